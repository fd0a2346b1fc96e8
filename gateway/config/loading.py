"""Loading: the environment, then flags over it, parsed by each option's parser, then the checks
that span several options.

Every failure is a ``ConfigError`` whose message is one line naming the variable or flag, which
``gateway serve`` prints before exiting with status 2.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from typing import Any

from gateway.config.options import Option
from gateway.config.settings import OPTIONS, Settings


class ConfigError(Exception):
    """A configuration value is wrong; the message is one line meant for the operator."""


def load_settings(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, str | None] | None = None
) -> Settings:
    """Settings from the environment (empty = unset), then CLI overrides (raw strings, None = not
    given), then validation."""
    environ = os.environ if environ is None else environ
    overrides = overrides or {}
    values: dict[str, Any] = {}
    for option in OPTIONS:
        raw = environ.get(option.env)
        if raw:
            values[option.field] = _parse(option, raw, option.env)
        raw_flag = overrides.get(option.field)
        if raw_flag is not None:
            values[option.field] = _parse(option, raw_flag, option.flag)
    settings = Settings(**values)
    if not settings.instance_id:
        settings = settings.with_overrides(
            instance_id=f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        )
    validate(settings)
    return settings


def _parse(option: Option, raw: str, source: str) -> Any:
    try:
        return option.parse(raw)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{source}: {exc}") from None


def validate(settings: Settings) -> None:
    """The rules between options; each option's own range was checked by its parser."""
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
    if (settings.tls_cert_file is None) != (settings.tls_key_file is None):
        raise ConfigError("GATEWAY_TLS_CERT_FILE and GATEWAY_TLS_KEY_FILE must be set together")
    if settings.metrics_port is not None:
        # Worker k of --workers N serves its metrics on GATEWAY_METRICS_PORT + k.
        ports = range(settings.metrics_port, settings.metrics_port + settings.workers)
        if settings.port in ports or ports[-1] > 65535:
            raise ConfigError(
                "GATEWAY_METRICS_PORT: the metrics port(s) must differ from GATEWAY_PORT and stay "
                "within 65535 (worker k of --workers N uses GATEWAY_METRICS_PORT + k)"
            )
