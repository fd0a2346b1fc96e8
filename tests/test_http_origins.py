"""The origin policy of gateway/http.py (GATEWAY_CORS_ORIGINS): preflights, exposed headers
and the WebSocket upgrade's Origin check; unset, no CORS header anywhere and any Origin may open a
WebSocket."""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest
from aiohttp import WSServerHandshakeError
from aiohttp.test_utils import TestClient

from gateway.config import ConfigError, load_settings
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, AppFactory, bearer, login
from tests.realtime.helpers import Peer

APP = "https://dashboard.example.com"
OTHER = "https://evil.example.net"

PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type, x-request-id",
}


def upgrade_headers(origin: str | None) -> dict[str, str]:
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
    }
    if origin is not None:
        headers["Origin"] = origin
    return headers


@pytest.fixture
async def cors(make_client: AppFactory) -> TestClient[Any, Any]:
    return await make_client(cors_origins=(APP.lower(), "http://localhost:3000"))


async def test_preflight_from_an_allowed_origin(cors: TestClient[Any, Any]) -> None:
    response = await cors.options("/v1/auth/login", headers={"Origin": APP, **PREFLIGHT})
    assert response.status == 204
    assert await response.read() == b""
    assert response.headers["Access-Control-Allow-Origin"] == APP
    assert response.headers["Access-Control-Allow-Methods"] == (
        "GET, POST, PUT, PATCH, DELETE, OPTIONS"
    )
    assert response.headers["Access-Control-Allow-Headers"] == (
        "Authorization, Content-Type, X-Request-ID"
    )
    assert response.headers["Access-Control-Max-Age"] == "600"
    assert response.headers["Vary"] == "Origin"
    assert "X-Request-ID" in response.headers


async def test_preflight_from_another_origin(cors: TestClient[Any, Any]) -> None:
    response = await cors.options(
        "/v1/auth/login", headers={"Origin": OTHER, "X-Request-ID": "pre-1", **PREFLIGHT}
    )
    assert response.status == 403
    assert await response.json() == {"message": "Origin not allowed", "request_id": "pre-1"}
    assert not [name for name in response.headers if name.startswith("Access-Control-")]


async def test_responses_to_an_allowed_origin_expose_the_gateways_headers(
    cors: TestClient[Any, Any],
) -> None:
    response = await cors.post(
        "/v1/auth/login",
        json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
        headers={"Origin": "http://LOCALHOST:3000"},
    )
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == "http://LOCALHOST:3000"
    assert response.headers["Access-Control-Expose-Headers"] == (
        "X-Request-ID, Retry-After, X-Sessions-Closed, X-Sessions-Closed-By"
    )
    # Errors carry them too: a page must be able to read a 401's body and request id.
    response = await cors.get("/v1/users", headers={"Origin": APP})
    assert response.status == 401
    assert response.headers["Access-Control-Allow-Origin"] == APP


async def test_responses_to_another_origin_carry_no_cors_header(
    cors: TestClient[Any, Any],
) -> None:
    response = await cors.get("/healthz", headers={"Origin": OTHER})
    assert response.status == 200
    assert not [name for name in response.headers if name.startswith("Access-Control-")]


async def test_a_wildcard_allows_every_origin(make_client: AppFactory) -> None:
    client = await make_client(cors_origins=("*",))
    response = await client.options("/v1/users", headers={"Origin": OTHER, **PREFLIGHT})
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == OTHER
    ws = await client.ws_connect("/v1/ws", headers={"Origin": OTHER})
    await ws.close()


async def test_unset_means_no_cors_headers_and_any_websocket_origin(
    client: TestClient[Any, Any],
) -> None:
    response = await client.options("/v1/auth/login", headers={"Origin": APP, **PREFLIGHT})
    assert response.status == 405
    assert not [name for name in response.headers if name.startswith("Access-Control-")]
    response = await client.get("/healthz", headers={"Origin": APP})
    assert not [name for name in response.headers if name.startswith("Access-Control-")]
    ws = await client.ws_connect("/v1/ws", headers={"Origin": OTHER})
    await ws.close()


async def test_websocket_upgrade_from_an_allowed_origin(cors: TestClient[Any, Any]) -> None:
    token = (await login(cors, ADMIN_EMAIL, ADMIN_PASSWORD))["access_token"]
    ws = await cors.ws_connect("/v1/ws", headers={"Origin": APP, **bearer(token)})
    assert await Peer(ws).is_open()
    await ws.close()


async def test_websocket_upgrade_from_a_disallowed_origin_is_403(
    cors: TestClient[Any, Any],
) -> None:
    response = await cors.get("/v1/ws", headers={**upgrade_headers(OTHER), "X-Request-ID": "ws-1"})
    assert response.status == 403
    assert await response.json() == {
        "message": "WebSocket upgrade from a disallowed Origin",
        "request_id": "ws-1",
    }
    assert response.headers["X-Request-ID"] == "ws-1"
    with pytest.raises(WSServerHandshakeError) as refused:
        await cors.ws_connect("/v1/ws", headers={"Origin": "null"})
    assert refused.value.status == 403


async def test_websocket_upgrade_without_origin_is_not_affected(
    cors: TestClient[Any, Any],
) -> None:
    ws = await cors.ws_connect("/v1/ws")
    assert await Peer(ws).is_open()
    await ws.close()


@pytest.mark.parametrize(
    "value",
    [
        "https://app.example.com/path",
        "app.example.com",
        "ftp://app.example.com",
        "https://app.example.com:99999999",
        "https://a b.example.com",
    ],
)
def test_origins_that_are_not_origins_stop_start_up(value: str) -> None:
    with pytest.raises(ConfigError, match="GATEWAY_CORS_ORIGINS: not an origin"):
        load_settings({"GATEWAY_CORS_ORIGINS": value})


@pytest.mark.parametrize(
    "origin",
    ["null", "", "https://dashboard.example.com.evil.net", "x" * 6000, "https://dashböard.example"],
)
async def test_hostile_origins_get_no_cors_and_no_websocket(
    cors: TestClient[Any, Any], origin: str
) -> None:
    response = await cors.get("/healthz", headers={"Origin": origin})
    assert response.status == 200
    assert "Access-Control-Allow-Origin" not in response.headers
    response = await cors.options("/v1/auth/login", headers={"Origin": origin, **PREFLIGHT})
    assert response.status == 403
    assert (await response.json())["message"] == "Origin not allowed"
    response = await cors.get("/v1/ws", headers=upgrade_headers(origin))
    assert response.status == 403
