"""Every option of the gateway, declared once: the ``Settings`` fields and their ``OPTIONS``.

To add an option, add one field here (``name: type = option(default, help, parse=...)``); its
variable ``GATEWAY_NAME``, its ``--name`` flag, its line in ``gateway serve --help`` and its row
in ``gateway config`` follow from it. Then run ``make docs`` to write the row into the README
(tests/test_docs.py checks it is there). A check across several options goes in
``loading.validate``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from gateway.config import parsers as p
from gateway.config.options import Option, option, options_of
from gateway.config.parsers import IPNetwork


@dataclass(frozen=True, slots=True)
class Settings:
    """The gateway's configuration; tests build it directly, operators through ``load_settings``."""

    database_url: str | None = option(
        None, "PostgreSQL URL; unset = an embedded PostgreSQL kept in the data dir", secret=True
    )
    redis_url: str | None = option(
        None, "Redis URL for the cluster bus; unset = in-process bus (one process)", secret=True
    )
    redis_prefix: str = option(
        "gateway",
        "prefix of every Redis channel (several deployments may share a Redis)",
        parse=p.label,
    )
    host: str = option("127.0.0.1", "address to listen on")
    port: int = option(8080, "TCP port to listen on", parse=p.port)
    workers: int = option(
        1,
        "worker processes sharing the port (SO_REUSEPORT); more than 1 needs Redis",
        parse=p.positive_int,
    )
    data_dir: Path = option(
        Path("data"), "directory for the embedded PostgreSQL and the generated signing secret"
    )
    public_url: str | None = option(
        None, "external base URL (reported by server/info); default http://HOST:PORT"
    )
    log_level: str = option("INFO", "DEBUG, INFO, WARNING or ERROR", parse=p.log_level)
    log_format: str = option(
        "text",
        "text (one readable line per record) or json (one JSON object per line)",
        parse=p.one_of("text", "json"),
    )
    metrics: bool = option(True, "serve Prometheus metrics (off: no /metrics)")
    metrics_port: int | None = option(
        None, "serve /metrics on this port (same host) instead of the API port", parse=p.port
    )
    cors_origins: tuple[str, ...] = option(
        (),
        "browser origins (comma-separated, or *) allowed to call the REST API and to open "
        "WebSockets; unset = no CORS headers, any WebSocket origin",
        parse=p.comma_separated(p.origin),
    )
    tls_cert_file: Path | None = option(
        None, "PEM certificate (chain) to serve HTTPS/WSS natively; reloaded on SIGHUP"
    )
    tls_key_file: Path | None = option(None, "PEM private key of GATEWAY_TLS_CERT_FILE")
    access_ttl: float = option(
        30 * 60.0, "access token lifetime (e.g. 30m)", parse=p.positive_duration
    )
    refresh_ttl: float = option(
        30 * 86400.0, "refresh token lifetime (e.g. 30d)", parse=p.positive_duration
    )
    mint_max_ttl: float = option(
        365 * 86400.0,
        "longest lifetime of a minted token (an administrator's device token; others never "
        "outlive the caller's login session)",
        parse=p.positive_duration,
    )
    jwt_issuer: str = option("gateway", "the iss claim issued and required")
    jwt_algorithm: str = option("HS256", "HS256, RS256, ES256 or EdDSA", parse=p.algorithm)
    jwt_secret: str | None = option(
        None,
        "HS256 secret (at least 32 bytes); unset = generated once and kept in the data dir",
        secret=True,
    )
    jwt_previous_secret: str | None = option(
        None, "HS256 secret still accepted during a rotation", secret=True
    )
    jwt_private_key_file: Path | None = option(None, "PEM private key for RS256/ES256/EdDSA")
    jwt_previous_public_key_file: Path | None = option(
        None, "PEM public key still accepted during a rotation"
    )
    jwt_leeway: float = option(
        10.0, "clock leeway allowed when checking exp/iat", parse=p.non_negative_duration
    )
    admin_email: str | None = option(
        None, "with GATEWAY_ADMIN_PASSWORD: make sure this admin exists at start-up"
    )
    admin_password: str | None = option(
        None, "password of the start-up admin (used only when it is created)", secret=True
    )
    argon2_time_cost: int = option(3, "argon2id passes", parse=p.positive_int)
    argon2_memory_kib: int = option(65536, "argon2id memory (KiB)", parse=p.positive_int)
    argon2_parallelism: int = option(4, "argon2id lanes", parse=p.positive_int)
    hash_workers: int = option(
        2, "threads that hash passwords off the event loop", parse=p.positive_int
    )
    login_failures_per_account: int = option(
        5,
        "failed logins per account and client address within the window before 429",
        parse=p.positive_int,
    )
    login_failures_per_address: int = option(
        20, "failed logins per client address within the window before 429", parse=p.positive_int
    )
    login_failure_window: float = option(
        300.0, "window over which failed logins are counted", parse=p.positive_duration
    )
    max_body_bytes: int = option(
        1024 * 1024, "largest REST request body (413 beyond)", parse=p.positive_int
    )
    ws_auth_timeout: float = option(
        10.0, "a WebSocket not authenticated by then is closed", parse=p.positive_duration
    )
    ws_expiry_grace: float = option(
        30.0,
        "after a session's token expires, time to re-authenticate before the close",
        parse=p.non_negative_duration,
    )
    ws_heartbeat: float = option(
        30.0, "server ping interval; a missing pong closes the socket", parse=p.positive_duration
    )
    ws_max_message_bytes: int = option(
        64 * 1024,
        "largest inbound WebSocket message (closed with 1009 beyond)",
        parse=p.positive_int,
    )
    ws_queue_messages: int = option(
        1000,
        "outbound messages queued per session before it is closed as a slow consumer",
        parse=p.positive_int,
    )
    ws_queue_bytes: int = option(
        1024 * 1024,
        "outbound bytes queued per session before it is closed as a slow consumer",
        parse=p.positive_int,
    )
    ws_rate: float = option(
        200.0,
        "inbound messages per second allowed per session (token bucket rate)",
        parse=p.positive_float,
    )
    ws_burst: int = option(400, "inbound burst allowed per session", parse=p.positive_int)
    ws_max_subscriptions: int = option(
        256,
        "subscriptions one session may hold at once (a subscribe beyond gets a 403 reply)",
        parse=p.positive_int,
    )
    poll_max_waiting: int = option(
        32,
        "long polls one user may have waiting at once on an instance (beyond: 429)",
        parse=p.positive_int,
    )
    ws_max_errors: int = option(
        20,
        "consecutive error replies before the session is closed (1008)",
        parse=p.positive_int,
    )
    persist_interval: float = option(
        0.05, "how often queued notifications/commands are written", parse=p.positive_duration
    )
    persist_batch: int = option(2000, "largest batch written at once", parse=p.positive_int)
    persist_max_pending: int = option(
        100_000,
        "acknowledged messages waiting to be written beyond which new ones are refused (503)",
        parse=p.positive_int,
    )
    persist_max_pending_bytes: int = option(
        256 * 1024 * 1024,
        "bytes of payload (parameters, results as JSON) waiting to be written beyond which new "
        "messages are refused (503)",
        parse=p.positive_int,
    )
    history_page_max_bytes: int = option(
        64 * 1024 * 1024,
        "bytes of payload one history page (list, poll) may hold; a larger one is refused (422) "
        "with a request to ask for fewer items",
        parse=p.positive_int,
    )
    retention: float = option(
        30 * 86400.0, "how long notifications and commands are kept", parse=p.positive_duration
    )
    reconcile_interval: float = option(
        5.0,
        "how often the revocation view is reconciled with PostgreSQL",
        parse=p.positive_duration,
    )
    revoke_wait: float = option(
        0.2,
        "how long a revoking request waits for other instances' receipts",
        parse=p.non_negative_duration,
    )
    trusted_proxies: tuple[IPNetwork, ...] = option(
        (),
        "reverse proxies (addresses or CIDRs, comma-separated) whose X-Forwarded-For is believed",
        parse=p.comma_separated(p.ip_network),
    )
    instance_id: str = option(
        "",
        "name of this instance in receipts and logs; default host-pid",
        parse=p.optional_label,
    )

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @property
    def embedded_database(self) -> bool:
        return self.database_url is None


OPTIONS: tuple[Option, ...] = options_of(Settings)


def redact(url: str) -> str:
    """A URL fit for logs: any password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
