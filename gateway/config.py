"""Settings: one table of options read from the environment, with CLI flags over them.

The same table drives ``gateway serve --help`` and the README's configuration table, so the three
never disagree.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import re
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    """A configuration value is wrong; the message is one line meant for the operator."""


def redact(url: str) -> str:
    """A URL fit for logs: any password replaced by ***."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(text: str) -> float:
    """Seconds from ``"90"``, ``"90s"``, ``"30m"``, ``"12h"``, ``"30d"`` or ``"200ms"``."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use seconds, or a number with ms/s/m/h/d)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {text!r} (use true or false)")


def _int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"not an integer: {text!r}") from None


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"not a number: {text!r}") from None
    if not 0 < value < math.inf:  # float() also takes "nan" and "inf"
        raise ValueError(f"must be a finite number greater than zero, got {text!r}")
    return value


def _port(text: str) -> int:
    value = _int(text)
    if not 0 <= value <= 65535:
        raise ValueError(f"not a TCP port: {value}")
    return value


def _non_negative_duration(text: str) -> float:
    value = parse_duration(text)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _positive_duration(text: str) -> float:
    value = parse_duration(text)
    if value <= 0:
        raise ValueError("must be greater than zero")
    return value


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(text: str) -> tuple[IPNetwork, ...]:
    """``10.0.0.5, 172.28.0.0/16``: addresses or networks of trusted reverse proxies."""
    found = []
    for part in text.split(","):
        if part.strip():
            try:
                found.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                raise ValueError(f"not an IP address or network: {part.strip()!r}") from None
    return tuple(found)


_ALGORITHMS = ("HS256", "RS256", "ES256", "EdDSA")


def _algorithm(text: str) -> str:
    for name in _ALGORITHMS:
        if text.strip().lower() == name.lower():
            return name
    raise ValueError(f"unsupported algorithm {text!r} (one of {', '.join(_ALGORITHMS)})")


def _log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError(f"unknown log level {text!r} (DEBUG, INFO, WARNING or ERROR)")
    return level


@dataclass(frozen=True, slots=True)
class Option:
    field: str
    env: str
    parse: Callable[[str], Any]
    help: str
    secret: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.field.replace("_", "-")


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str | None = None
    redis_url: str | None = None
    redis_prefix: str = "gateway"
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    data_dir: Path = Path("data")
    public_url: str | None = None
    log_level: str = "INFO"
    access_ttl: float = 30 * 60.0
    refresh_ttl: float = 30 * 86400.0
    jwt_issuer: str = "gateway"
    jwt_algorithm: str = "HS256"
    jwt_secret: str | None = None
    jwt_previous_secret: str | None = None
    jwt_private_key_file: Path | None = None
    jwt_previous_public_key_file: Path | None = None
    jwt_leeway: float = 10.0
    admin_email: str | None = None
    admin_password: str | None = None
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4
    hash_workers: int = 2
    login_failures_per_account: int = 5
    login_failures_per_address: int = 20
    login_failure_window: float = 300.0
    max_body_bytes: int = 1024 * 1024
    ws_auth_timeout: float = 10.0
    ws_expiry_grace: float = 30.0
    ws_heartbeat: float = 30.0
    ws_max_message_bytes: int = 64 * 1024
    ws_queue_messages: int = 1000
    ws_queue_bytes: int = 1024 * 1024
    ws_rate: float = 200.0
    ws_burst: int = 400
    ws_max_errors: int = 20
    persist_interval: float = 0.05
    persist_batch: int = 2000
    retention: float = 30 * 86400.0
    reconcile_interval: float = 5.0
    revoke_wait: float = 0.2
    instance_id: str = ""
    trusted_proxies: tuple[IPNetwork, ...] = ()

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @property
    def embedded_database(self) -> bool:
        return self.database_url is None


OPTIONS: tuple[Option, ...] = (
    Option(
        "database_url",
        "GATEWAY_DATABASE_URL",
        str,
        "PostgreSQL URL; unset = an embedded PostgreSQL kept in the data dir",
        secret=True,
    ),
    Option(
        "redis_url",
        "GATEWAY_REDIS_URL",
        str,
        "Redis URL for the cluster bus; unset = in-process bus (one process)",
        secret=True,
    ),
    Option(
        "redis_prefix",
        "GATEWAY_REDIS_PREFIX",
        str,
        "prefix of every Redis channel (several deployments may share a Redis)",
    ),
    Option("host", "GATEWAY_HOST", str, "address to listen on"),
    Option("port", "GATEWAY_PORT", _port, "TCP port to listen on"),
    Option(
        "workers",
        "GATEWAY_WORKERS",
        _positive_int,
        "worker processes sharing the port (SO_REUSEPORT); more than 1 needs Redis",
    ),
    Option(
        "data_dir",
        "GATEWAY_DATA_DIR",
        Path,
        "directory for the embedded PostgreSQL and the generated signing secret",
    ),
    Option(
        "public_url",
        "GATEWAY_PUBLIC_URL",
        str,
        "external base URL (reported by server/info); default http://HOST:PORT",
    ),
    Option("log_level", "GATEWAY_LOG_LEVEL", _log_level, "DEBUG, INFO, WARNING or ERROR"),
    Option(
        "access_ttl", "GATEWAY_ACCESS_TTL", _positive_duration, "access token lifetime (e.g. 30m)"
    ),
    Option(
        "refresh_ttl",
        "GATEWAY_REFRESH_TTL",
        _positive_duration,
        "refresh token lifetime (e.g. 30d)",
    ),
    Option("jwt_issuer", "GATEWAY_JWT_ISSUER", str, "the iss claim issued and required"),
    Option("jwt_algorithm", "GATEWAY_JWT_ALGORITHM", _algorithm, "HS256, RS256, ES256 or EdDSA"),
    Option(
        "jwt_secret",
        "GATEWAY_JWT_SECRET",
        str,
        "HS256 secret (at least 32 bytes); unset = generated once and kept in the data dir",
        secret=True,
    ),
    Option(
        "jwt_previous_secret",
        "GATEWAY_JWT_PREVIOUS_SECRET",
        str,
        "HS256 secret still accepted during a rotation",
        secret=True,
    ),
    Option(
        "jwt_private_key_file",
        "GATEWAY_JWT_PRIVATE_KEY_FILE",
        Path,
        "PEM private key for RS256/ES256/EdDSA",
    ),
    Option(
        "jwt_previous_public_key_file",
        "GATEWAY_JWT_PREVIOUS_PUBLIC_KEY_FILE",
        Path,
        "PEM public key still accepted during a rotation",
    ),
    Option(
        "jwt_leeway",
        "GATEWAY_JWT_LEEWAY",
        _non_negative_duration,
        "clock leeway allowed when checking exp/iat",
    ),
    Option(
        "admin_email",
        "GATEWAY_ADMIN_EMAIL",
        str,
        "with GATEWAY_ADMIN_PASSWORD: make sure this admin exists at start-up",
    ),
    Option(
        "admin_password",
        "GATEWAY_ADMIN_PASSWORD",
        str,
        "password of the start-up admin (used only when it is created)",
        secret=True,
    ),
    Option("argon2_time_cost", "GATEWAY_ARGON2_TIME_COST", _positive_int, "argon2id passes"),
    Option(
        "argon2_memory_kib", "GATEWAY_ARGON2_MEMORY_KIB", _positive_int, "argon2id memory (KiB)"
    ),
    Option("argon2_parallelism", "GATEWAY_ARGON2_PARALLELISM", _positive_int, "argon2id lanes"),
    Option(
        "hash_workers",
        "GATEWAY_HASH_WORKERS",
        _positive_int,
        "threads that hash passwords off the event loop",
    ),
    Option(
        "login_failures_per_account",
        "GATEWAY_LOGIN_FAILURES_PER_ACCOUNT",
        _positive_int,
        "failed logins per account within the window before 429",
    ),
    Option(
        "login_failures_per_address",
        "GATEWAY_LOGIN_FAILURES_PER_ADDRESS",
        _positive_int,
        "failed logins per client address within the window before 429",
    ),
    Option(
        "login_failure_window",
        "GATEWAY_LOGIN_FAILURE_WINDOW",
        _positive_duration,
        "window over which failed logins are counted",
    ),
    Option(
        "max_body_bytes",
        "GATEWAY_MAX_BODY_BYTES",
        _positive_int,
        "largest REST request body (413 beyond)",
    ),
    Option(
        "ws_auth_timeout",
        "GATEWAY_WS_AUTH_TIMEOUT",
        _positive_duration,
        "a WebSocket not authenticated by then is closed",
    ),
    Option(
        "ws_expiry_grace",
        "GATEWAY_WS_EXPIRY_GRACE",
        _non_negative_duration,
        "after a session's token expires, time to re-authenticate before the close",
    ),
    Option(
        "ws_heartbeat",
        "GATEWAY_WS_HEARTBEAT",
        _positive_duration,
        "server ping interval; a missing pong closes the socket",
    ),
    Option(
        "ws_max_message_bytes",
        "GATEWAY_WS_MAX_MESSAGE_BYTES",
        _positive_int,
        "largest inbound WebSocket message (closed with 1009 beyond)",
    ),
    Option(
        "ws_queue_messages",
        "GATEWAY_WS_QUEUE_MESSAGES",
        _positive_int,
        "outbound messages queued per session before it is closed as a slow consumer",
    ),
    Option(
        "ws_queue_bytes",
        "GATEWAY_WS_QUEUE_BYTES",
        _positive_int,
        "outbound bytes queued per session before it is closed as a slow consumer",
    ),
    Option(
        "ws_rate",
        "GATEWAY_WS_RATE",
        _positive_float,
        "inbound messages per second allowed per session (token bucket rate)",
    ),
    Option("ws_burst", "GATEWAY_WS_BURST", _positive_int, "inbound burst allowed per session"),
    Option(
        "ws_max_errors",
        "GATEWAY_WS_MAX_ERRORS",
        _positive_int,
        "consecutive error replies before the session is closed (1008)",
    ),
    Option(
        "persist_interval",
        "GATEWAY_PERSIST_INTERVAL",
        _positive_duration,
        "how often queued notifications/commands are written",
    ),
    Option(
        "persist_batch",
        "GATEWAY_PERSIST_BATCH",
        _positive_int,
        "largest batch written at once",
    ),
    Option(
        "retention",
        "GATEWAY_RETENTION",
        _positive_duration,
        "how long notifications and commands are kept",
    ),
    Option(
        "reconcile_interval",
        "GATEWAY_RECONCILE_INTERVAL",
        _positive_duration,
        "how often the revocation view is reconciled with PostgreSQL",
    ),
    Option(
        "revoke_wait",
        "GATEWAY_REVOKE_WAIT",
        _non_negative_duration,
        "how long a revoking request waits for other instances' receipts",
    ),
    Option(
        "trusted_proxies",
        "GATEWAY_TRUSTED_PROXIES",
        _networks,
        "reverse proxies (addresses or CIDRs, comma-separated) whose X-Forwarded-For is believed",
    ),
    Option(
        "instance_id",
        "GATEWAY_INSTANCE_ID",
        str,
        "name of this instance in receipts and logs; default host-pid",
    ),
)


def _parse(option: Option, raw: str, source: str) -> Any:
    try:
        return option.parse(raw)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load_settings(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, str | None] | None = None
) -> Settings:
    """Settings from the environment, then CLI overrides (raw strings), then validation."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for option in OPTIONS:
        raw = environ.get(option.env)
        if raw is not None and raw != "":
            values[option.field] = _parse(option, raw, option.env)
        if overrides and overrides.get(option.field) is not None:
            raw_flag = overrides[option.field]
            assert raw_flag is not None
            values[option.field] = _parse(option, raw_flag, option.flag)
    settings = Settings(**values)
    if not settings.instance_id:
        settings = replace(
            settings, instance_id=f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        )
    validate(settings)
    return settings


def validate(settings: Settings) -> None:
    if bool(settings.admin_email) != bool(settings.admin_password):
        raise ConfigError(
            "GATEWAY_ADMIN_EMAIL and GATEWAY_ADMIN_PASSWORD must be set together (or neither)"
        )
    if settings.jwt_algorithm == "HS256":
        for name, secret in (
            ("GATEWAY_JWT_SECRET", settings.jwt_secret),
            ("GATEWAY_JWT_PREVIOUS_SECRET", settings.jwt_previous_secret),
        ):
            if secret is not None and len(secret.encode()) < 32:
                raise ConfigError(f"{name}: an HS256 secret must be at least 32 bytes")
    elif settings.jwt_private_key_file is None:
        raise ConfigError(
            f"GATEWAY_JWT_ALGORITHM={settings.jwt_algorithm} needs GATEWAY_JWT_PRIVATE_KEY_FILE"
        )
    if settings.workers > 1 and not settings.redis_url:
        raise ConfigError(
            "--workers > 1 needs GATEWAY_REDIS_URL: the workers share sessions through Redis"
        )
    if settings.workers > 1 and settings.embedded_database:
        raise ConfigError(
            "--workers > 1 needs GATEWAY_DATABASE_URL: the embedded PostgreSQL serves one process"
        )
    if settings.argon2_memory_kib < 8 * settings.argon2_parallelism:
        raise ConfigError(
            "GATEWAY_ARGON2_MEMORY_KIB must be at least 8 x GATEWAY_ARGON2_PARALLELISM"
        )
    if settings.ws_burst < 1 or settings.ws_rate <= 0:
        raise ConfigError("GATEWAY_WS_RATE must be greater than zero")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per option; the default shown is the built-in one (env vars override it)."""
    defaults = Settings()
    for option in OPTIONS:
        default = getattr(defaults, option.field)
        shown = "unset" if default in (None, "", ()) else default
        parser.add_argument(
            option.flag,
            dest=option.field,
            default=None,
            metavar=option.env,
            help=f"{option.help} [env {option.env}; default {shown}]",
        )


def overrides_from_args(args: argparse.Namespace) -> dict[str, str | None]:
    return {f.name: getattr(args, f.name, None) for f in fields(Settings)}


def describe(options: Sequence[Option] = OPTIONS) -> str:
    """The configuration table as Markdown (kept in the README)."""
    defaults = Settings()
    rows = ["| variable | flag | default | meaning |", "| --- | --- | --- | --- |"]
    for option in options:
        default = getattr(defaults, option.field)
        shown = "unset" if default in (None, "", ()) else str(default)
        rows.append(f"| `{option.env}` | `{option.flag}` | {shown} | {option.help} |")
    return "\n".join(rows)
