"""Requests the HTTP parser refuses, and the rule that no token ever reaches the log.

aiohttp refuses what it cannot parse (a NUL in a header, a request or header line over 8190
bytes) with its own text/plain 400 before any handler runs (documented in the README); the
gateway's part is that the log gets one line per refusal, without a traceback and without the
request's bytes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, bearer, login
from tests.realtime.helpers import build_world, connect

SECRET = "SECRETTOKENBYTES"


async def raw_request(client: TestClient[Any, Any], request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(65536), 5)
    finally:
        writer.close()


def log_text(caplog: pytest.LogCaptureFixture) -> str:
    """Everything logged, as a handler would write it (messages, arguments and tracebacks)."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(formatter.format(record) for record in caplog.records)


def _get(target: bytes, header: bytes) -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + header + b"\r\n\r\n"


@pytest.mark.parametrize(
    "request_bytes",
    [
        _get(b"/v1/auth/me", b"Authorization: Bearer " + SECRET.encode() + b"\x00abc"),
        _get(b"/v1/auth/me", b"Authorization: Bearer " + SECRET.encode() + b"A" * 9000),
        _get(b"/v1/auth/me", b"X-Padding: " + b"A" * 9000),
        _get(b"/v1/devices/d1/notifications?names=" + b"A" * 9000, b"X-Padding: 1"),
    ],
    ids=["nul-byte", "long-authorization", "long-header", "long-request-line"],
)
async def test_a_malformed_request_is_a_400_and_one_log_line_without_its_bytes(
    client: TestClient[Any, Any], caplog: pytest.LogCaptureFixture, request_bytes: bytes
) -> None:
    caplog.set_level(logging.DEBUG)
    answer = await raw_request(client, request_bytes)
    assert answer.startswith(b"HTTP/1.0 400 Bad Request\r\n"), answer[:200]
    refusals = [r for r in caplog.records if r.name == "gateway.http"]
    assert len(refusals) == 1
    assert refusals[0].getMessage().startswith("refused a malformed HTTP request from 127.0.0.1: ")
    assert all(record.exc_info is None for record in caplog.records)
    text = log_text(caplog)
    assert SECRET not in text and "AAAAAAAA" not in text
    # The server goes on serving.
    assert (await client.get("/healthz")).status == 200


async def test_no_token_reaches_the_log(
    client: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Traffic with real tokens (REST, WebSocket upgrade and messages, refresh, revoked and
    expired-looking ones, malformed headers), logged at DEBUG: no token, nor the signature of
    one, appears in any log line."""
    caplog.set_level(logging.DEBUG)
    world = await build_world(client)
    pair = await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    tokens = [world.admin, world.alice, world.bob, world.alice_refresh, world.admin_refresh]
    tokens += [pair["access_token"], pair["refresh_token"]]
    for token in tokens:
        for headers in (bearer(token), {"Authorization": token}, bearer(token + "x")):
            await client.get("/v1/auth/me", headers=headers)
            await client.get("/v1/auth/tokenInfo", headers=headers)
        await client.post("/v1/auth/token/refresh", json={"refresh_token": token})
        await client.post("/v1/auth/token/refresh", json={"refresh_token": token[:-2]})
    peer = await connect(client, world.alice)
    await peer.request("authenticate", token=world.alice)
    await peer.request("authenticate", token=world.bob)
    await peer.request("authenticate", token=world.alice[:-3] + "abc")
    await peer.request("token", login="alice@example.com", password="client-password")
    await peer.request("notification/insert", deviceId="d1", notification={"notification": "t"})
    # alice's refresh token was rotated over REST above: presented here it is reuse, and the
    # revocation closes this socket of her family.
    await peer.send("token/refresh", refreshToken=world.alice_refresh)
    await peer.closed()
    denied = await client.ws_connect("/v1/ws", headers=bearer(world.bob + "x"))
    await denied.receive()
    await client.post("/v1/auth/logout", headers=bearer(pair["access_token"]))
    await client.get("/v1/auth/me", headers=bearer(pair["access_token"]))  # revoked now
    revoked = await client.ws_connect("/v1/ws", headers=bearer(pair["access_token"]))
    await revoked.receive()
    await peer.close()
    assert caplog.records, "nothing was logged: the test would prove nothing"
    text = log_text(caplog)
    for token in tokens:
        signature = token.rsplit(".", 1)[-1]
        assert token not in text
        assert signature not in text
