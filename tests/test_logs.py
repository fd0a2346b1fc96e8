"""Logs of a real gateway process: GATEWAY_LOG_FORMAT=json gives one JSON object per line with
the request it belongs to; in either format no token, password or secret appears anywhere."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path

import aiohttp
import orjson
import pytest

from gateway.logs import JsonFormatter, Scrubber
from tests.support.processes import ADMIN_PASSWORD, JWT_SECRET, GatewayProcess, gateway_env
from tests.support.servers import free_port

WRONG_PASSWORD = "wrong-password-that-must-not-be-logged"
REUSE_REQUEST = "reuse-request-1"


async def exercise(gateway: GatewayProcess) -> list[str]:
    """Logins (good and bad), a refresh reuse (logged as a warning), a WebSocket session and a
    logout; returns every secret value the gateway saw."""
    url = gateway.url
    seen = [ADMIN_PASSWORD, WRONG_PASSWORD, JWT_SECRET]
    async with aiohttp.ClientSession() as http:
        async with http.post(
            url + "/v1/auth/login", json={"email": "admin@example.com", "password": WRONG_PASSWORD}
        ) as response:
            assert response.status == 401
        async with http.post(
            url + "/v1/auth/login", json={"email": "admin@example.com", "password": ADMIN_PASSWORD}
        ) as response:
            assert response.status == 200
            pair = await response.json()
        seen += [pair["access_token"], pair["refresh_token"]]
        for attempt in range(2):
            async with http.post(
                url + "/v1/auth/token/refresh",
                json={"refresh_token": pair["refresh_token"]},
                headers={"X-Request-ID": REUSE_REQUEST if attempt else "refresh-1"},
            ) as response:
                assert response.status == (401 if attempt else 200)
                if not attempt:
                    rotated = await response.json()
                    seen += [rotated["access_token"], rotated["refresh_token"]]
        async with http.post(
            url + "/v1/auth/login", json={"email": "admin@example.com", "password": ADMIN_PASSWORD}
        ) as response:
            fresh = await response.json()
        seen += [fresh["access_token"], fresh["refresh_token"]]
        ws = await http.ws_connect(gateway.ws_url)
        await ws.send_json({"action": "authenticate", "token": fresh["access_token"]})
        assert (await ws.receive_json(timeout=5))["status"] == "success"
        await ws.send_json({"action": "token", "login": "admin@example.com", "password": "x"})
        assert (await ws.receive_json(timeout=5))["status"] == "error"
        async with http.post(
            url + "/v1/auth/logout", headers={"Authorization": f"Bearer {fresh['access_token']}"}
        ) as response:
            assert response.status == 204
        closing = await ws.receive(timeout=5)
        assert closing.data == 4003
        await ws.close()
    return seen


async def run_gateway(tmp_path: Path, database_url: str, fmt: str) -> tuple[str, list[str]]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env = gateway_env(
        database_url=database_url,
        port=free_port(),
        instance_id=f"logs-{uuid.uuid4().hex[:6]}",
        data_dir=data_dir,
        extra={"GATEWAY_LOG_FORMAT": fmt, "GATEWAY_LOG_LEVEL": "DEBUG"},
    )
    gateway = GatewayProcess(fmt, env, tmp_path)
    gateway.start()
    try:
        await gateway.wait_ready()
        seen = await exercise(gateway)
    finally:
        await asyncio.to_thread(gateway.stop)
    return gateway.stderr(), seen


async def test_json_logs_parse_line_by_line_and_hold_no_secret(
    clean_db: str, tmp_path: Path
) -> None:
    output, seen = await run_gateway(tmp_path, clean_db, "json")
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines
    entries = [orjson.loads(line) for line in lines]
    for entry in entries:
        assert isinstance(entry, dict)
        assert {"time", "level", "logger", "message", "instance"} <= set(entry)
        assert entry["instance"].startswith("logs-")
    reuse = [entry for entry in entries if "reuse detected" in entry["message"]]
    assert len(reuse) == 1
    assert reuse[0]["level"] == "WARNING"
    assert reuse[0]["request_id"] == REUSE_REQUEST
    # A WebSocket's records carry its session id (read from its task's name), not a request id;
    # the upgrade's request id is logged once, with the session it opened.
    [opened] = [entry for entry in entries if "opened by request" in entry["message"]]
    assert opened["message"].startswith(f"session {opened['session_id']}: opened by request ")
    assert "request_id" not in opened
    for secret in seen:
        assert secret not in output


async def test_text_logs_hold_no_secret(clean_db: str, tmp_path: Path) -> None:
    output, seen = await run_gateway(tmp_path, clean_db, "text")
    assert f"[request={REUSE_REQUEST}]" in output
    for secret in seen:
        assert secret not in output


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl end", "token [token] end"),
        ("postgresql://gw:hunter2@db:5432/gw", "postgresql://gw:***@db:5432/gw"),
        ('{"password": "hunter2"}', '{"password": "***"}'),
        ("secret=hunter2 and more", "secret=*** and more"),
        ("the configured s3cr3t-value leaked", "the configured *** leaked"),
    ],
)
def test_the_scrubber_removes_what_must_not_be_logged(message: str, expected: str) -> None:
    record = logging.LogRecord("gateway", logging.INFO, __file__, 1, message, None, None)
    line = orjson.loads(JsonFormatter(Scrubber(["s3cr3t-value"])).format(record))
    assert line["message"] == expected
