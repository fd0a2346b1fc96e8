"""Native TLS: the server's SSLContext (TLS 1.2 at least) and its certificate reload.

Reloading loads the new chain into the same context: handshakes from then on present it, while
connections already established keep the session they negotiated, so nothing live is dropped.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

from gateway.config import ConfigError

log = logging.getLogger(__name__)


def _load(context: ssl.SSLContext, cert_file: Path, key_file: Path) -> None:
    for variable, path in (
        ("GATEWAY_TLS_CERT_FILE", cert_file),
        ("GATEWAY_TLS_KEY_FILE", key_file),
    ):
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            raise ConfigError(f"{variable}: cannot read {path}: {exc.strerror or exc}") from None
    try:
        context.load_cert_chain(cert_file, key_file)
    except ssl.SSLError as exc:
        raise ConfigError(
            f"GATEWAY_TLS_CERT_FILE/GATEWAY_TLS_KEY_FILE: not a PEM certificate chain and its "
            f"private key ({cert_file}, {key_file}): {exc.reason or exc}"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"GATEWAY_TLS_CERT_FILE/GATEWAY_TLS_KEY_FILE: cannot load ({cert_file}, "
            f"{key_file}): {exc}"
        ) from None


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """Raises ConfigError (one line) when a file is missing, unreadable or not a matching pair."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION
    _load(context, cert_file, key_file)
    return context


def reload(context: ssl.SSLContext, cert_file: Path, key_file: Path) -> bool:
    """Load the files again (on SIGHUP); a bad new pair is logged and the old one kept."""
    try:
        # A pair that fails half-way must not leave the live context with a new certificate
        # and the old key: try it on a scratch context first.
        _load(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), cert_file, key_file)
        _load(context, cert_file, key_file)
    except ConfigError as exc:
        log.error("TLS certificate not reloaded, keeping the current one: %s", exc)
        return False
    log.info("TLS certificate reloaded from %s", cert_file)
    return True
