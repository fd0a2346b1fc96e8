"""Real gateway processes for the multi-instance tests: ``python -m gateway serve`` with its own
port and environment, ready when ``/readyz`` says so, stopped with SIGTERM (then SIGKILL).

Each process writes its stdout and stderr to files next to the test's ``tmp_path``, so a failure
can show what the gateway logged; nothing is piped, so a chatty gateway never blocks on a full
pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp

REPO_ROOT = Path(__file__).resolve().parents[2]

JWT_SECRET = "cluster-test-secret-0123456789-abcdefghij"
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-password"

READY_TIMEOUT = 30.0
"""Upper bound for a gateway to answer /readyz with 200 after it was started."""

STOP_TIMEOUT = 15.0
"""How long SIGTERM gets before SIGKILL (the gateway's own shutdown timeout is 10 s)."""


def gateway_env(
    *,
    database_url: str,
    port: int,
    instance_id: str,
    data_dir: Path,
    redis_url: str | None = None,
    redis_prefix: str | None = None,
    reconcile_interval: str = "1s",
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of one gateway: the caller's, minus any GATEWAY_* it carries, plus a
    test configuration (cheap argon2, short reconciliation, one shared JWT secret)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("GATEWAY_")}
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "GATEWAY_DATABASE_URL": database_url,
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(port),
            "GATEWAY_INSTANCE_ID": instance_id,
            "GATEWAY_DATA_DIR": str(data_dir),
            "GATEWAY_JWT_SECRET": JWT_SECRET,
            "GATEWAY_ADMIN_EMAIL": ADMIN_EMAIL,
            "GATEWAY_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "GATEWAY_ARGON2_TIME_COST": "1",
            "GATEWAY_ARGON2_MEMORY_KIB": "64",
            "GATEWAY_ARGON2_PARALLELISM": "1",
            "GATEWAY_RECONCILE_INTERVAL": reconcile_interval,
            "GATEWAY_PERSIST_INTERVAL": "20ms",
            # The origin stops waiting as soon as every instance has answered (milliseconds);
            # the bound only matters on a machine too busy to answer within the default 200 ms.
            "GATEWAY_REVOKE_WAIT": "2s",
            "GATEWAY_LOG_LEVEL": "INFO",
        }
    )
    if redis_url is not None:
        env["GATEWAY_REDIS_URL"] = redis_url
    if redis_prefix is not None:
        env["GATEWAY_REDIS_PREFIX"] = redis_prefix
    env.update(extra or {})
    return env


class GatewayProcess:
    """One ``gateway serve`` process (with ``--workers N``: the supervising parent)."""

    def __init__(
        self,
        name: str,
        env: Mapping[str, str],
        log_dir: Path,
        args: Sequence[str] = (),
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.name = name
        self.ssl_context = ssl_context
        """Set for a gateway serving TLS itself: the client context that trusts its CA."""
        self.env = dict(env)
        self.args = list(args)
        self.port = int(self.env["GATEWAY_PORT"])
        self.instance_id = self.env["GATEWAY_INSTANCE_ID"]
        self.stdout_path = log_dir / f"gateway-{name}.stdout"
        self.stderr_path = log_dir / f"gateway-{name}.stderr"
        self.process: subprocess.Popen[bytes] | None = None

    # -- addresses -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        scheme = "wss" if self.ssl_context else "ws"
        return f"{scheme}://127.0.0.1:{self.port}/v1/ws"

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        assert self.process is None, f"gateway {self.name} already started"
        self.stdout_path.parent.mkdir(parents=True, exist_ok=True)
        with self.stdout_path.open("ab") as out, self.stderr_path.open("ab") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway", "serve", *self.args],
                env=self.env,
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                # Its own process group: workers of --workers N are stopped with their parent.
                start_new_session=True,
            )

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    async def readyz(
        self, session: aiohttp.ClientSession, timeout: float = 2.0
    ) -> tuple[int, dict[str, Any]]:
        """One /readyz answer (status, body) on a fresh connection."""
        async with session.get(
            self.url + "/readyz",
            timeout=aiohttp.ClientTimeout(total=timeout),
            headers={"Connection": "close"},
        ) as response:
            body: dict[str, Any] = await response.json(content_type=None)
            return response.status, body

    async def wait_ready(
        self, timeout: float = READY_TIMEOUT, *, instances: Sequence[str] | None = None
    ) -> None:
        """Until /readyz answers 200 (from every one of ``instances`` when given: the workers
        behind one port); bounded, and fails early with the log when the process exits."""
        wanted = set(instances or [self.instance_id])
        seen: set[str] = set()
        deadline = time.monotonic() + timeout
        last = "no answer"
        connector = aiohttp.TCPConnector(force_close=True, ssl=self.ssl_context or True)
        async with aiohttp.ClientSession(connector=connector) as session:
            while True:
                if self.returncode is not None:
                    raise AssertionError(
                        f"gateway {self.name} exited with {self.returncode} before it was ready"
                        f"\n{self.logs()}"
                    )
                try:
                    status, body = await self.readyz(session, timeout=1.0)
                    last = f"{status} {body}"
                    if status == 200:
                        seen.add(str(body.get("instance")))
                        if wanted <= seen:
                            return
                except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                    last = repr(exc)
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"gateway {self.name} not ready after {timeout:.0f} s (last: {last}; "
                        f"ready: {sorted(seen)})\n{self.logs()}"
                    )
                await asyncio.sleep(0.05)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, then SIGKILL to the whole process group after ``timeout``."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=timeout)
        # The process group is ours (start_new_session): anything left in it (a worker whose
        # parent died) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        if process.poll() is None:
            process.wait(timeout=5)
        return process.returncode

    # -- diagnostics -----------------------------------------------------------------------

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def logs(self, lines: int = 60) -> str:
        tail = self.stderr().splitlines()[-lines:]
        return (
            f"--- gateway {self.name} ({self.instance_id}) stderr, last {len(tail)} lines ---\n"
            + ("\n".join(tail))
        )
