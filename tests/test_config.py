"""Configuration: environment variables with CLI flags over them, and a bad value ends start-up
with one clear line (exit 2), never a traceback."""

from __future__ import annotations

import argparse
import ipaddress
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.config import (
    OPTIONS,
    ConfigError,
    Settings,
    add_arguments,
    describe,
    load_settings,
    overrides_from_args,
    parse_bool,
    parse_duration,
)
from gateway.config.options import option as declare
from gateway.config.options import options_of
from gateway.config.parsers import comma_separated, one_of

GATEWAY = Path(sys.executable).parent / "gateway"
SECRET = "a-secret-that-is-at-least-32-bytes-long"


def run_gateway(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real console script, with a clean GATEWAY_* environment plus ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return subprocess.run(
        [str(GATEWAY), *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_defaults() -> None:
    settings = load_settings({})
    assert settings.host == "127.0.0.1"
    assert settings.port == 8080
    assert settings.access_ttl == 30 * 60
    assert settings.refresh_ttl == 30 * 86400
    assert settings.jwt_algorithm == "HS256"
    assert settings.database_url is None and settings.embedded_database
    assert settings.redis_url is None
    assert settings.instance_id  # generated when not configured


def test_values_come_from_the_environment() -> None:
    settings = load_settings(
        {
            "GATEWAY_DATABASE_URL": "postgresql://db/gw",
            "GATEWAY_PORT": "9000",
            "GATEWAY_ACCESS_TTL": "15m",
            "GATEWAY_REFRESH_TTL": "7d",
            "GATEWAY_JWT_SECRET": SECRET,
            "GATEWAY_JWT_ALGORITHM": "hs256",
            "GATEWAY_JWT_LEEWAY": "500ms",
            "GATEWAY_DATA_DIR": "/var/lib/gateway",
            "GATEWAY_ADMIN_EMAIL": "root@example.com",
            "GATEWAY_ADMIN_PASSWORD": "pw",
            "GATEWAY_LOG_LEVEL": "debug",
            "GATEWAY_INSTANCE_ID": "gw-1",
        }
    )
    assert settings.database_url == "postgresql://db/gw"
    assert not settings.embedded_database
    assert settings.port == 9000
    assert settings.access_ttl == 900
    assert settings.refresh_ttl == 7 * 86400
    assert settings.jwt_secret == SECRET
    assert settings.jwt_algorithm == "HS256"
    assert settings.jwt_leeway == 0.5
    assert settings.data_dir == Path("/var/lib/gateway")
    assert settings.admin_email == "root@example.com"
    assert settings.log_level == "DEBUG"
    assert settings.instance_id == "gw-1"


def test_flags_override_the_environment_and_empty_variables_are_unset() -> None:
    settings = load_settings(
        {"GATEWAY_PORT": "9000", "GATEWAY_HOST": "", "GATEWAY_ACCESS_TTL": "1h"},
        overrides={"port": "9100", "access_ttl": None},
    )
    assert settings.port == 9100
    assert settings.host == "127.0.0.1"
    assert settings.access_ttl == 3600


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("30m", 1800), ("12h", 43200), ("30d", 2592000), ("200ms", 0.2),
     (" 1.5 h ", 5400)],
)  # fmt: skip
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "-5", "5 minutes", "1e3", "5w"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_booleans() -> None:
    assert [parse_bool(t) for t in ("1", "true", "YES", "on")] == [True] * 4
    assert [parse_bool(t) for t in ("0", "false", "No", "off", "")] == [False] * 5
    with pytest.raises(ValueError, match="not a boolean: 'maybe'"):
        parse_bool("maybe")


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"GATEWAY_PORT": "abc"}, "GATEWAY_PORT: not an integer: 'abc'"),
        ({"GATEWAY_PORT": "70000"}, "GATEWAY_PORT: not a TCP port: 70000"),
        ({"GATEWAY_WORKERS": "0"}, "GATEWAY_WORKERS: must be at least 1, got 0"),
        (
            {"GATEWAY_ACCESS_TTL": "soon"},
            "GATEWAY_ACCESS_TTL: not a duration: 'soon' (use seconds, or a number with ms/s/m/h/d)",
        ),
        ({"GATEWAY_ACCESS_TTL": "0"}, "GATEWAY_ACCESS_TTL: must be greater than zero"),
        (
            {"GATEWAY_JWT_ALGORITHM": "none"},
            "GATEWAY_JWT_ALGORITHM: unsupported algorithm 'none'"
            " (one of HS256, RS256, ES256, EdDSA)",
        ),
        (
            {"GATEWAY_JWT_ALGORITHM": "RS256"},
            "GATEWAY_JWT_ALGORITHM=RS256 needs GATEWAY_JWT_PRIVATE_KEY_FILE",
        ),
        (
            {"GATEWAY_JWT_SECRET": "short"},
            "GATEWAY_JWT_SECRET: an HS256 secret must be at least 32 bytes",
        ),
        (
            {"GATEWAY_JWT_PREVIOUS_SECRET": "short"},
            "GATEWAY_JWT_PREVIOUS_SECRET: an HS256 secret must be at least 32 bytes",
        ),
        (
            {"GATEWAY_ADMIN_EMAIL": "root@example.com"},
            "GATEWAY_ADMIN_EMAIL and GATEWAY_ADMIN_PASSWORD must be set together (or neither)",
        ),
        (
            {"GATEWAY_LOG_LEVEL": "loud"},
            "GATEWAY_LOG_LEVEL: unknown log level 'loud' (DEBUG, INFO, WARNING or ERROR)",
        ),
        (
            {"GATEWAY_WORKERS": "2", "GATEWAY_DATABASE_URL": "postgresql://db/gw"},
            "--workers > 1 needs GATEWAY_REDIS_URL: the workers share sessions through Redis",
        ),
        (
            {"GATEWAY_WS_RATE": "nan"},
            "GATEWAY_WS_RATE: must be a finite number greater than zero, got 'nan'",
        ),
        ({"GATEWAY_WS_RATE": "x"}, "GATEWAY_WS_RATE: not a number: 'x'"),
        (
            {"GATEWAY_INSTANCE_ID": "a\nforged log line"},
            "GATEWAY_INSTANCE_ID: must be 1-128 of A-Z a-z 0-9 . _ : -, got 'a\\nforged log line'",
        ),
        (
            {"GATEWAY_REDIS_PREFIX": "my gateway"},
            "GATEWAY_REDIS_PREFIX: must be 1-128 of A-Z a-z 0-9 . _ : -, got 'my gateway'",
        ),
        (
            {"GATEWAY_ARGON2_MEMORY_KIB": "8", "GATEWAY_ARGON2_PARALLELISM": "4"},
            "GATEWAY_ARGON2_MEMORY_KIB must be at least 8 x GATEWAY_ARGON2_PARALLELISM",
        ),
    ],
)
def test_bad_values_are_one_line_config_errors(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ)
    assert str(caught.value) == message


def test_a_bad_flag_is_named_as_the_flag() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({}, overrides={"port": "-1"})
    assert str(caught.value) == "--port: not a TCP port: -1"


def test_every_setting_has_exactly_one_option() -> None:
    from dataclasses import fields

    assert sorted(option.field for option in OPTIONS) == sorted(f.name for f in fields(Settings))
    assert all(option.env == "GATEWAY_" + option.field.upper() for option in OPTIONS)


# -- the real command ------------------------------------------------------------------------


def test_serve_help_lists_every_option() -> None:
    result = run_gateway("serve", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    help_text = " ".join(result.stdout.split())
    for option in OPTIONS:
        assert option.flag in help_text, option.flag
        assert f"env {option.env}" in help_text, option.env
    assert "default 127.0.0.1" in help_text
    assert "default 8080" in help_text


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ((), {"GATEWAY_PORT": "abc"}, "GATEWAY_PORT: not an integer: 'abc'"),
        (("--port", "70000"), {}, "--port: not a TCP port: 70000"),
        (
            ("--access-ttl", "soon"),
            {},
            "--access-ttl: not a duration: 'soon' (use seconds, or a number with ms/s/m/h/d)",
        ),
        (
            (),
            {"GATEWAY_JWT_SECRET": "short"},
            "GATEWAY_JWT_SECRET: an HS256 secret must be at least 32 bytes",
        ),
        (
            ("--jwt-algorithm", "RS256"),
            {},
            "GATEWAY_JWT_ALGORITHM=RS256 needs GATEWAY_JWT_PRIVATE_KEY_FILE",
        ),
    ],
)
def test_serve_with_a_bad_value_prints_one_line_and_exits_2(
    args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    result = run_gateway("serve", *args, env=env)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == f"gateway: configuration error: {message}\n"


def test_a_bad_key_file_stops_start_up_with_one_line(database_url: str, tmp_path: Path) -> None:
    """Key files are read at start-up, after the database is reached; still one line, exit 2."""
    result = run_gateway(
        "serve",
        "--port", "0",
        "--jwt-algorithm", "RS256",
        "--jwt-private-key-file", str(tmp_path / "missing.pem"),
        "--log-level", "ERROR",
        env={"GATEWAY_DATABASE_URL": database_url, "GATEWAY_DATA_DIR": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "gateway: configuration error: GATEWAY_JWT_PRIVATE_KEY_FILE: cannot read "
        f"{tmp_path / 'missing.pem'}: No such file or directory"
    )


def test_config_prints_the_table() -> None:
    result = run_gateway("config")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "| variable | flag | default | meaning |"
    assert len(lines) == 2 + len(OPTIONS)
    assert "| `GATEWAY_PORT` | `--port` | 8080 | TCP port to listen on |" in lines


def test_trusted_proxies_are_a_comma_separated_list_of_addresses_or_networks() -> None:
    settings = load_settings({"GATEWAY_TRUSTED_PROXIES": "10.0.0.5, ,172.28.0.0/16,"})
    assert settings.trusted_proxies == (
        ipaddress.ip_network("10.0.0.5/32"),
        ipaddress.ip_network("172.28.0.0/16"),
    )
    with pytest.raises(ConfigError) as caught:
        load_settings({"GATEWAY_TRUSTED_PROXIES": "10.0.0.5, proxy.local"})
    assert str(caught.value) == (
        "GATEWAY_TRUSTED_PROXIES: not an IP address or network: 'proxy.local'"
    )


def test_secrets_stay_out_of_the_settings_repr() -> None:
    settings = Settings(
        database_url="postgresql://gw:db-password@db/gw",
        redis_url="redis://:redis-password@redis:6379/0",
        jwt_secret=SECRET,
        jwt_previous_secret=SECRET + "-old",
        admin_email="root@example.com",
        admin_password="admin-password",
    )
    shown = repr(settings)
    for secret in ("db-password", "redis-password", SECRET, "admin-password"):
        assert secret not in shown
    assert "root@example.com" in shown
    assert {o.field for o in OPTIONS if o.secret} == {
        "database_url", "redis_url", "jwt_secret", "jwt_previous_secret", "admin_password"
    }  # fmt: skip


# -- declaring an option -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Extra:
    """Options as another feature would declare them: the name once, the rest derived."""

    metrics: bool = declare(False, "serve Prometheus metrics")
    metrics_port: int | None = declare(None, "port of the metrics listener")
    cors_origins: tuple[str, ...] = declare((), "allowed origins", parse=comma_separated(str))
    log_format: str = declare("text", "text or json", parse=one_of("text", "json"))
    token: str | None = declare(None, "a secret", secret=True)


def test_an_option_is_one_declaration_from_which_variable_flag_and_parser_follow() -> None:
    metrics, metrics_port, cors, log_format, token = options_of(_Extra)
    assert [o.env for o in options_of(_Extra)] == [
        "GATEWAY_METRICS", "GATEWAY_METRICS_PORT", "GATEWAY_CORS_ORIGINS", "GATEWAY_LOG_FORMAT",
        "GATEWAY_TOKEN",
    ]  # fmt: skip
    assert metrics_port.flag == "--metrics-port"
    assert metrics.parse("yes") is True
    assert metrics_port.parse(" 9100 ") == 9100
    assert cors.parse("https://a.example, https://b.example") == (
        "https://a.example",
        "https://b.example",
    )
    assert log_format.parse("JSON") == "json"
    with pytest.raises(ValueError, match=r"unknown value 'xml' \(one of text, json\)"):
        log_format.parse("xml")
    assert token.secret and not metrics.secret
    assert describe(options_of(_Extra)).splitlines()[2] == (
        "| `GATEWAY_METRICS` | `--metrics` | False | serve Prometheus metrics |"
    )


def test_a_boolean_flag_may_be_given_bare() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser, options_of(_Extra))
    given = overrides_from_args(parser.parse_args(["--metrics"]), options_of(_Extra))
    assert given["metrics"] == "true"
    assert given["metrics_port"] is None
    off = parser.parse_args(["--metrics", "off", "--metrics-port", "9100"])
    assert overrides_from_args(off, options_of(_Extra))["metrics"] == "off"


def test_a_type_without_a_parser_is_refused_when_declared() -> None:
    @dataclass(frozen=True)
    class Odd:
        ratio: float = declare(0.5, "a float needs its own parser (duration? rate?)")

    with pytest.raises(TypeError, match=r"Odd.ratio: <class 'float'> needs parse="):
        options_of(Odd)


@pytest.mark.parametrize(
    ("env", "fine"),
    [
        ({"GATEWAY_METRICS_PORT": "9100"}, True),
        ({"GATEWAY_METRICS_PORT": "8080"}, False),
        ({"GATEWAY_METRICS_PORT": "65535"}, True),
        ({"GATEWAY_METRICS_PORT": "8079", "GATEWAY_WORKERS": "2"}, False),
        ({"GATEWAY_METRICS_PORT": "65535", "GATEWAY_WORKERS": "2"}, False),
    ],
)
def test_metrics_ports_stay_clear_of_the_api_port(env: dict[str, str], fine: bool) -> None:
    """Worker k of --workers N serves its metrics on GATEWAY_METRICS_PORT + k."""
    full = {
        "GATEWAY_JWT_SECRET": SECRET,
        "GATEWAY_DATABASE_URL": "postgresql://db/gw",
        "GATEWAY_REDIS_URL": "redis://r",
        **env,
    }
    if fine:
        assert load_settings(full).metrics_port == int(env["GATEWAY_METRICS_PORT"])
    else:
        with pytest.raises(ConfigError, match="GATEWAY_METRICS_PORT: the metrics port"):
            load_settings(full)


def test_tls_files_come_together() -> None:
    with pytest.raises(ConfigError, match="must be set together"):
        load_settings({"GATEWAY_TLS_KEY_FILE": "/k.pem"})
