"""Minting bounded in time and tied to its origin: a client's minted tokens never outlive the
client's login session and die with it; an administrator's device tokens live up to
GATEWAY_MINT_MAX_TTL; every minted token is revocable by jti and with its user."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.types import CloseCode
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, AppFactory, login
from tests.realtime.helpers import World, build_world, connect, rest
from tests.support.http import expect_error, me_status
from tests.support.tokens import split

DAY = 86400


@pytest.fixture
async def world(client: TestClient[Any, Any]) -> World:
    return await build_world(client)


async def mint(world: World, token: str, expected: int = 201, **body: Any) -> dict[str, Any]:
    pair: dict[str, Any] = await rest(
        world.client, "POST", "/v1/auth/token/create", token, expected, body
    )
    return pair


async def refresh(client: TestClient[Any, Any], token: str) -> Any:
    return await client.post("/v1/auth/token/refresh", json={"refresh_token": token})


async def test_a_short_lived_client_token_cannot_mint_past_its_login_session(
    make_client: AppFactory,
) -> None:
    world = await build_world(await make_client(access_ttl=60.0, refresh_ttl=3600.0))
    session_ends = split(world.alice_refresh)[1]["exp"]
    pair = await mint(world, world.alice, expires_in=30 * DAY)
    access, refreshed = split(pair["access_token"])[1], split(pair["refresh_token"])[1]
    assert access["exp"] <= session_ends
    assert refreshed["exp"] <= session_ends, "the refresh token is bound too"
    assert access["exp"] >= session_ends - 5, "capped, not refused"

    # Rotating the minted refresh token never moves the bound.
    rotated = await refresh(world.client, pair["refresh_token"])
    assert rotated.status == 200, await rotated.text()
    body = await rotated.json()
    assert split(body["refresh_token"])[1]["exp"] <= session_ends
    assert split(body["access_token"])[1]["exp"] <= session_ends


async def test_a_clients_minted_token_dies_when_the_client_logs_out(world: World) -> None:
    pair = await mint(world, world.alice, actions=["GetDevice"])
    socket = await connect(world.client, pair["access_token"])
    assert (await socket.ok("device/get", deviceId="d1"))["device"]["id"] == "d1"

    await rest(world.client, "POST", "/v1/auth/logout", world.alice, 204)

    assert await socket.closed() == (CloseCode.TOKEN_REVOKED, "token revoked: logout")
    assert await me_status(world.client, pair["access_token"]) == 401
    await expect_error(await refresh(world.client, pair["refresh_token"]), 401, "Token revoked")


async def test_tokens_minted_from_minted_tokens_die_with_the_root_session(world: World) -> None:
    child = await mint(world, world.alice)
    grandchild = await mint(world, child["access_token"], actions=["GetDevice"])
    assert split(grandchild["access_token"])[1]["fam"] == [
        split(world.alice)[1]["sid"],
        split(child["access_token"])[1]["sid"],
    ]
    socket = await connect(world.client, grandchild["access_token"])
    await rest(world.client, "POST", "/v1/auth/logout", world.alice, 204)
    assert (await socket.closed())[0] == CloseCode.TOKEN_REVOKED
    for token in (child["access_token"], grandchild["access_token"]):
        assert await me_status(world.client, token) == 401


async def test_a_minted_tokens_logout_leaves_the_callers_session_alone(world: World) -> None:
    child = await mint(world, world.alice)
    await rest(world.client, "POST", "/v1/auth/logout", child["access_token"], 204)
    assert await me_status(world.client, child["access_token"]) == 401
    assert await me_status(world.client, world.alice) == 200


async def test_reuse_of_the_callers_refresh_token_closes_the_minted_tokens_sockets(
    world: World,
) -> None:
    pair = await mint(world, world.alice, actions=["GetDevice"])
    socket = await connect(world.client, pair["access_token"])
    assert (await refresh(world.client, world.alice_refresh)).status == 200
    reused = await refresh(world.client, world.alice_refresh)
    await expect_error(reused, 401, "Refresh token reuse detected; the session has been revoked")
    assert await socket.closed() == (
        CloseCode.TOKEN_REVOKED,
        "token revoked: refresh token reuse",
    )
    assert await me_status(world.client, pair["access_token"]) == 401


async def test_logout_everywhere_and_revoke_by_user_end_minted_tokens(world: World) -> None:
    first = await mint(world, world.alice)
    await rest(world.client, "POST", "/v1/auth/logout/all", first["access_token"], 204)
    assert await me_status(world.client, first["access_token"]) == 401
    assert await me_status(world.client, world.alice) == 401

    device = await mint(world, world.admin, user_id=world.bob_id, expires_in=90 * DAY)
    socket = await connect(world.client, device["access_token"])
    receipt = await rest(
        world.client, "POST", "/v1/auth/revoke", world.admin, 200, {"user_id": world.bob_id}
    )
    assert receipt["sessions_closed"] == 1
    assert (await socket.closed())[0] == CloseCode.TOKEN_REVOKED
    assert await me_status(world.client, device["access_token"]) == 401


async def test_every_minted_token_is_revocable_by_jti(world: World) -> None:
    for caller, body in ((world.alice, {}), (world.admin, {"user_id": world.bob_id})):
        pair = await mint(world, caller, **body)
        for token in (pair["access_token"], pair["refresh_token"]):
            jti = split(token)[1]["jti"]
            await rest(world.client, "POST", "/v1/auth/revoke", world.admin, 200, {"jti": jti})
        assert await me_status(world.client, pair["access_token"]) == 401
        rotated = await refresh(world.client, pair["refresh_token"])
        await expect_error(rotated, 401, "Token revoked")


async def test_an_admin_mints_long_lived_device_tokens_up_to_the_configured_maximum(
    make_client: AppFactory,
) -> None:
    world = await build_world(await make_client(mint_max_ttl=400.0 * DAY))
    pair = await mint(world, world.admin, user_id=world.bob_id, expires_in=400 * DAY)
    access, refreshed = split(pair["access_token"])[1], split(pair["refresh_token"])[1]
    assert access["exp"] - int(access["iat"]) in (400 * DAY, 400 * DAY + 1)
    assert refreshed["exp"] == access["exp"]
    assert "fam" not in access, "an administrator's mint is a family of its own"
    # It survives the administrator's logout.
    await rest(world.client, "POST", "/v1/auth/logout", world.admin, 204)
    assert await me_status(world.client, pair["access_token"]) == 200

    admin = (await login(world.client, ADMIN_EMAIL, ADMIN_PASSWORD))["access_token"]
    too_long = await world.client.post(
        "/v1/auth/token/create",
        json={"user_id": world.bob_id, "expires_in": 401 * DAY},
        headers={"Authorization": f"Bearer {admin}"},
    )
    await expect_error(too_long, 422, f"expires_in must be at most {400 * DAY} seconds")
