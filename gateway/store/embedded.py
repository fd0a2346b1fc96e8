"""The embedded PostgreSQL: a real server that the gateway starts and keeps in its data dir.

pgserver bundles the server binaries, so a machine with only Python can run the gateway.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from gateway.config import ConfigError

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.pgdata = (data_dir / "postgres").resolve()
        self._server: Any = None

    def start(self) -> str:
        """Start (or join) the server and return its URL; blocks for a second or two."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                from pgserver.postgres_server import get_server
            except ImportError:  # pragma: no cover - pgserver is a dependency
                raise ConfigError(
                    "embedded PostgreSQL needs the pgserver package; set GATEWAY_DATABASE_URL"
                ) from None
            self.pgdata.mkdir(parents=True, exist_ok=True)
            try:
                self._server = get_server(self.pgdata, cleanup_mode="stop")
            except Exception as exc:  # noqa: BLE001 - pgserver raises plain exceptions
                raise ConfigError(
                    f"embedded PostgreSQL failed to start in {self.pgdata}: {exc}"
                ) from None
        url: str = self._server.get_uri()
        log.info("embedded PostgreSQL running in %s", self.pgdata)
        return url

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
