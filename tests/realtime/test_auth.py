"""Authenticating a WebSocket session: Bearer on the upgrade, the ``authenticate`` message,
re-authentication on a live socket, and the closes for bad or missing tokens."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import AppFactory
from tests.realtime.helpers import World, build_world, connect, connect_authenticated, rest


async def test_bearer_on_upgrade_authenticates(world: World) -> None:
    peer = await connect(world.client, world.alice)
    body = await peer.ok("device/get", deviceId="d1")
    assert body == {
        "device": {
            "id": "d1",
            "name": "d1",
            "data": None,
            "networkId": world.n1,
            "deviceTypeId": 1,
            "isBlocked": False,
        }
    }


async def test_authenticate_message_authenticates(world: World) -> None:
    peer = await connect(world.client)
    await peer.fails(
        "device/get",
        401,
        "Not authenticated: send authenticate with an access token",
        deviceId="d1",
    )
    assert await peer.ok("authenticate", token=world.alice) == {}
    body = await peer.ok("device/list")
    assert [d["id"] for d in body["devices"]] == ["d1", "d3"]


async def test_reauthenticate_same_user_ok_other_user_forbidden(world: World) -> None:
    peer = await connect(world.client, world.alice)
    subscription_id = await peer.subscribe(deviceId="d1")
    fresh = (await peer.ok("token", login="alice@example.com", password="client-password"))[
        "accessToken"
    ]
    assert await peer.ok("authenticate", token=fresh) == {}
    await peer.fails(
        "authenticate",
        403,
        "This socket belongs to another user; open a new connection",
        token=world.bob,
    )
    # Still alice, subscriptions intact.
    await peer.fails("device/get", 403, "Device d2 is outside the token's scope", deviceId="d2")
    assert (await peer.ok("subscription/list"))["subscriptions"] == [
        {
            "subscriptionId": subscription_id,
            "type": "notification",
            "deviceId": "d1",
            "networkIds": None,
            "deviceTypeIds": None,
            "names": None,
        }
    ]


async def test_invalid_authenticate_message_keeps_session_open(world: World) -> None:
    peer = await connect(world.client)
    await peer.fails("authenticate", 401, "Invalid token", token="not-a-jwt")
    await peer.fails("authenticate", 400, "body: missing field: token")
    assert await peer.ok("authenticate", token=world.alice) == {}
    assert (await peer.ok("device/get", deviceId="d1"))["device"]["id"] == "d1"


async def test_invalid_token_on_upgrade_closes_4001(world: World) -> None:
    peer = await connect(world.client, "not-a-jwt")
    assert await peer.closed() == (4001, "Invalid token")


async def test_refresh_token_on_upgrade_closes_4001(world: World) -> None:
    peer = await connect(world.client, world.alice_refresh)
    assert await peer.closed() == (4001, "Invalid token: expected an access token")


async def test_revoked_token_on_upgrade_closes_4003(world: World) -> None:
    await rest(world.client, "POST", "/v1/auth/logout", world.alice, 204)
    peer = await connect(world.client, world.alice)
    assert await peer.closed() == (4003, "Token revoked")


async def test_not_authenticated_in_time_closes_4000(make_client: AppFactory) -> None:
    client = await make_client(ws_auth_timeout=0.3)
    peer = await connect(client)
    # Unauthenticated sockets may still ask for server/info until the timeout.
    assert (await peer.ok("server/info"))["info"]["apiVersion"] == "1"
    assert await peer.closed(timeout=3) == (4000, "authentication timeout")


async def test_authenticated_in_time_is_not_closed(make_client: AppFactory) -> None:
    client = await make_client(ws_auth_timeout=0.3)
    world = await build_world(client)
    peer = await connect_authenticated(client, world.alice)
    await peer.no_push(0.6)
    assert await peer.is_open()


async def test_server_info_shape(make_client: AppFactory) -> None:
    client = await make_client(public_url="https://gw.example:9443/")
    peer = await connect(client)
    body = await peer.ok("server/info")
    info: dict[str, Any] = body["info"]
    assert set(body) == {"info"}
    assert info == {
        "apiVersion": "1",
        "serverTimestamp": info["serverTimestamp"],
        "restServerUrl": "https://gw.example:9443/v1",
        "webSocketServerUrl": "wss://gw.example:9443/v1/ws",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", info["serverTimestamp"])


async def test_token_action_and_refresh_not_consumed(world: World) -> None:
    peer = await connect(world.client)
    await peer.fails(
        "token", 401, "Invalid email or password", login="alice@example.com", password="wrong-pw"
    )
    pair = await peer.ok("token", login="alice@example.com", password="client-password")
    assert set(pair) == {"accessToken", "refreshToken"}
    first = await peer.ok("token/refresh", refreshToken=pair["refreshToken"])
    second = await peer.ok("token/refresh", refreshToken=pair["refreshToken"])
    assert set(first) == {"accessToken"} and set(second) == {"accessToken"}
    # Each refreshed access token works on a new socket.
    for access in (pair["accessToken"], first["accessToken"], second["accessToken"]):
        other = await connect(world.client, access)
        assert (await other.ok("device/get", deviceId="d1"))["device"]["id"] == "d1"
    await peer.fails(
        "token/refresh", 401, "Invalid token: expected a refresh token", refreshToken=world.alice
    )


async def test_a_plain_get_on_the_websocket_path_is_a_json_400_with_a_request_id(
    client: TestClient[Any, Any],
) -> None:
    response = await client.get("/v1/ws", headers={"X-Request-ID": "probe-1"})
    assert response.status == 400
    assert response.headers["X-Request-ID"] == "probe-1"
    assert await response.json() == {
        "message": "Expected a WebSocket upgrade request",
        "request_id": "probe-1",
    }
