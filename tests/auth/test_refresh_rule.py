"""One refresh rule on both transports: a rotated refresh token presented anywhere is reuse, and
reuse revokes the family and closes its live sockets (4003); WebSocket ``token/refresh`` keeps
working without rotation while its token is the family's current one."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.types import CloseCode
from tests.conftest import AppFactory
from tests.realtime.helpers import World, build_world, connect, connect_authenticated
from tests.support.http import expect_error, expect_json, me_status
from tests.support.tokens import split

REUSE = "Refresh token reuse detected; the session has been revoked"


@pytest.fixture
async def world(client: TestClient[Any, Any]) -> World:
    return await build_world(client)


async def rest_refresh(client: TestClient[Any, Any], token: str) -> Any:
    return await client.post("/v1/auth/token/refresh", json={"refresh_token": token})


async def ws_login(world: World) -> tuple[str, str]:
    """A DeviceHive client's start: ``token`` over the WebSocket."""
    peer = await connect(world.client)
    pair = await peer.ok("token", login="alice@example.com", password="client-password")
    await peer.close()
    return pair["accessToken"], pair["refreshToken"]


async def assert_family_revoked(world: World, access: str, *refresh_tokens: str) -> None:
    assert await me_status(world.client, access) == 401
    probe = await connect(world.client)
    for token in refresh_tokens:
        await expect_error(await rest_refresh(world.client, token), 401, "Token revoked")
        await probe.fails("token/refresh", 401, "Token revoked", refreshToken=token)


async def test_rotated_over_rest_then_presented_over_the_websocket(world: World) -> None:
    access, r0 = await ws_login(world)
    live = await connect_authenticated(world.client, access)
    r1 = (await expect_json(await rest_refresh(world.client, r0), 200))["refresh_token"]

    thief = await connect(world.client)
    await thief.fails("token/refresh", 401, REUSE, refreshToken=r0)

    code, reason = await live.closed()
    assert code == CloseCode.TOKEN_REVOKED
    assert reason == "token revoked: refresh token reuse"
    assert await thief.is_open(), "the presenting socket is refused, not closed"
    await assert_family_revoked(world, access, r0, r1)


async def test_rotated_over_rest_then_presented_over_rest(world: World) -> None:
    access, r0 = await ws_login(world)
    live = await connect_authenticated(world.client, access)
    r1 = (await expect_json(await rest_refresh(world.client, r0), 200))["refresh_token"]

    await expect_error(await rest_refresh(world.client, r0), 401, REUSE)

    assert (await live.closed())[0] == CloseCode.TOKEN_REVOKED
    await assert_family_revoked(world, access, r0, r1)


async def test_refreshed_over_the_websocket_then_rotated_over_rest_then_reused(
    world: World,
) -> None:
    access, r0 = await ws_login(world)
    peer = await connect(world.client)
    ws_access = (await peer.ok("token/refresh", refreshToken=r0))["accessToken"]
    live = await connect_authenticated(world.client, ws_access)

    # The WebSocket refresh did not rotate: R0 is still current and REST may rotate it.
    r1 = (await expect_json(await rest_refresh(world.client, r0), 200))["refresh_token"]
    # Now R0 is consumed: presenting it over the WebSocket is reuse.
    await peer.fails("token/refresh", 401, REUSE, refreshToken=r0)

    assert (await live.closed())[0] == CloseCode.TOKEN_REVOKED
    assert await me_status(world.client, ws_access) == 401
    await assert_family_revoked(world, access, r0, r1)


async def test_rotated_over_rest_then_reused_over_rest_closes_websocket_refreshed_sockets(
    world: World,
) -> None:
    access, r0 = await ws_login(world)
    peer = await connect(world.client)
    ws_access = (await peer.ok("token/refresh", refreshToken=r0))["accessToken"]
    live = await connect_authenticated(world.client, ws_access)
    r1 = (await expect_json(await rest_refresh(world.client, r0), 200))["refresh_token"]
    await expect_error(await rest_refresh(world.client, r0), 401, REUSE)
    assert (await live.closed())[0] == CloseCode.TOKEN_REVOKED
    await assert_family_revoked(world, access, r0, r1)


async def test_a_devicehive_client_refreshes_with_its_original_token_until_rotated_elsewhere(
    world: World,
) -> None:
    access, r0 = await ws_login(world)
    peer = await connect_authenticated(world.client, access)
    for _ in range(5):
        fresh = (await peer.ok("token/refresh", refreshToken=r0))["accessToken"]
        assert await me_status(world.client, fresh) == 200
    assert (await peer.ok("device/get", deviceId="d1"))["device"]["id"] == "d1"

    r1 = (await expect_json(await rest_refresh(world.client, r0), 200))["refresh_token"]
    # The socket belongs to the family it reuses a token of: the revocation closes it.
    await peer.send("token/refresh", refreshToken=r0)
    assert await peer.closed() == (CloseCode.TOKEN_REVOKED, "token revoked: refresh token reuse")
    await assert_family_revoked(world, fresh, r1)


async def test_a_websocket_refresh_never_outlives_its_refresh_token(
    make_client: AppFactory,
) -> None:
    client = await make_client(refresh_ttl=60.0)
    world = await build_world(client)
    _, r0 = await ws_login(world)
    peer = await connect(world.client)
    fresh = (await peer.ok("token/refresh", refreshToken=r0))["accessToken"]
    assert split(fresh)[1]["exp"] <= split(r0)[1]["exp"]
