"""POST /v1/auth/token/create: minting never exceeds the caller's nor the target user's rights.

A client user minting an admin token is the classic hole in this API family; each way of asking
for more than one holds is tried here and must be a 403 naming what exceeds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.auth.minting import MAX_TOKEN_LENGTH
from gateway.auth.permissions import CLIENT_ACTIONS
from gateway.types import Action
from tests.conftest import bearer, create_user, login
from tests.support.http import (
    PAIR_KEYS,
    create_device,
    create_network,
    expect_error,
    expect_json,
    token_info,
)
from tests.support.tokens import resign, split


@dataclass
class World:
    client: TestClient[Any, Any]
    admin: dict[str, str]
    north: int
    south: int
    alice_id: int
    alice: dict[str, str]
    bob_id: int

    async def mint(self, headers: dict[str, str], **body: Any) -> Any:
        return await self.client.post("/v1/auth/token/create", json=body, headers=headers)


@pytest.fixture
async def world(client: TestClient[Any, Any], admin_headers: dict[str, str]) -> World:
    """Alice is a client in network north (device n-1); south (device s-1) is not hers."""
    north = await create_network(client, admin_headers, "north")
    south = await create_network(client, admin_headers, "south")
    await create_device(client, admin_headers, "n-1", north)
    await create_device(client, admin_headers, "s-1", south)
    alice = await create_user(client, admin_headers, email="alice@example.com", network_ids=[north])
    bob = await create_user(client, admin_headers, email="bob@example.com", network_ids=[south])
    pair = await login(client, "alice@example.com", "client-password")
    return World(
        client=client,
        admin=admin_headers,
        north=north,
        south=south,
        alice_id=alice["id"],
        alice=bearer(pair["access_token"]),
        bob_id=bob["id"],
    )


async def test_a_client_cannot_mint_admin_actions(world: World) -> None:
    response = await world.mint(world.alice, actions=["GetDevice", "ManageUser", "ManageNetwork"])
    await expect_error(
        response, 403, "Requested actions exceed your own rights: ManageNetwork, ManageUser"
    )
    # Numeric ids are the same request in another spelling.
    response = await world.mint(world.alice, actions=[3, 12])
    await expect_error(response, 403, "Requested actions exceed your own rights: ManageUser")


async def test_a_client_cannot_mint_for_another_user(world: World) -> None:
    response = await world.mint(world.alice, user_id=world.bob_id, actions=["GetDevice"])
    await expect_error(response, 403, "Minting a token for another user needs ManageUser")


async def test_a_client_may_name_itself_as_the_user(world: World) -> None:
    response = await world.mint(world.alice, user_id=world.alice_id, actions=["GetDevice"])
    body = await expect_json(response, 201)
    assert body["user_id"] == world.alice_id


async def test_a_client_cannot_mint_networks_it_is_not_a_member_of(world: World) -> None:
    response = await world.mint(world.alice, networkIds=[world.north, world.south])
    await expect_error(
        response,
        403,
        f"Requested networkIds exceed what the caller and the user may reach: {world.south}",
    )


async def test_a_client_cannot_mint_devices_beyond_its_networks(world: World) -> None:
    response = await world.mint(world.alice, deviceIds=["n-1", "s-1", "ghost"])
    await expect_error(
        response,
        403,
        "Requested deviceIds exceed what the caller and the user may reach: ghost, s-1",
    )


async def test_an_admin_cannot_mint_beyond_the_target_users_role(world: World) -> None:
    response = await world.mint(
        world.admin, user_id=world.alice_id, actions=["GetDevice", "ManageUser"]
    )
    await expect_error(response, 403, "Requested actions exceed the user's rights: ManageUser")


async def test_an_admin_cannot_mint_beyond_the_target_users_networks(world: World) -> None:
    response = await world.mint(world.admin, user_id=world.alice_id, networkIds=[world.south])
    await expect_error(
        response,
        403,
        f"Requested networkIds exceed what the caller and the user may reach: {world.south}",
    )
    response = await world.mint(world.admin, user_id=world.alice_id, deviceIds=["s-1"])
    await expect_error(
        response, 403, "Requested deviceIds exceed what the caller and the user may reach: s-1"
    )


async def test_a_valid_narrow_mint_carries_exactly_what_was_asked(world: World) -> None:
    response = await world.mint(
        world.alice,
        actions=["GetDevice", 4],
        networkIds=[world.north],
        deviceIds=["n-1"],
        expires_in=120,
    )
    body = await expect_json(response, 201)
    assert set(body) == PAIR_KEYS
    assert body["token_type"] == "Bearer"
    assert body["user_id"] == world.alice_id
    assert body["expires_in"] == 120

    info = await token_info(world.client, world.alice["Authorization"].split()[1])
    alice_sid = info["payload"]["sid"]
    # tokenInfo needs no particular action: it works even for a token without GetCurrentUser.
    info = await token_info(world.client, body["access_token"])
    header, payload = info["header"], info["payload"]
    assert header == {"alg": "HS256", "typ": "JWT", "kid": header["kid"]}
    assert header["kid"].startswith("hs-")
    assert payload == {
        "iss": "gateway",
        "sub": str(world.alice_id),
        "jti": payload["jti"],
        "iat": payload["iat"],
        "exp": payload["exp"],
        "typ": "access",
        "sid": payload["sid"],
        "role": "client",
        "actions": [Action.GetDevice, Action.GetDeviceNotification],
        "networkIds": [world.north],
        "deviceIds": ["n-1"],
        "fam": [alice_sid],
    }
    # iat is dated before the rights were read, so it may fall in the previous second.
    assert 120 <= payload["exp"] - int(payload["iat"]) <= 121
    assert payload["sid"] != alice_sid, "a minted pair is a login session of its own"
    assert payload["fam"] == [alice_sid], "...that dies with the caller's"
    _, refresh = split(body["refresh_token"])
    assert refresh["typ"] == "refresh"
    assert refresh["sid"] == payload["sid"]
    assert refresh["actions"] == payload["actions"]
    assert refresh["networkIds"] == [world.north]
    assert refresh["deviceIds"] == ["n-1"]
    assert refresh["fam"] == [alice_sid]
    assert refresh["exp"] == payload["exp"], "expires_in bounds the refresh token too"


async def test_a_minted_token_is_held_to_its_actions(world: World) -> None:
    body = await expect_json(await world.mint(world.alice, actions=["GetDevice"]), 201)
    headers = bearer(body["access_token"])
    await expect_error(
        await world.client.get("/v1/auth/me", headers=headers),
        403,
        "Missing permission: GetCurrentUser",
    )
    await expect_error(
        await world.mint(headers, actions=["GetDevice"]), 403, "Missing permission: ManageToken"
    )


async def test_a_narrowed_token_cannot_mint_a_wider_one(world: World) -> None:
    narrow = await expect_json(
        await world.mint(world.alice, actions=["ManageToken", "GetDevice"], deviceIds=["n-1"]),
        201,
    )
    headers = bearer(narrow["access_token"])
    await expect_error(
        await world.mint(headers, actions=["GetDevice", "GetNetwork"]),
        403,
        "Requested actions exceed your own rights: GetNetwork",
    )
    await expect_error(
        await world.mint(headers, actions=["GetDevice"], deviceIds=["n-1", "n-2"]),
        403,
        "Requested deviceIds exceed the caller's token: n-2",
    )
    # Leaving the scope out inherits the caller's narrow scope instead of widening to "*".
    inherited = await expect_json(await world.mint(headers, actions=["GetDevice"]), 201)
    payload = (await token_info(world.client, inherited["access_token"]))["payload"]
    assert payload["actions"] == [Action.GetDevice]
    assert payload["deviceIds"] == ["n-1"]
    assert payload["networkIds"] == ["*"]


async def test_a_network_narrowed_token_cannot_mint_another_network(
    world: World,
) -> None:
    east = await create_network(world.client, world.admin, "east")
    response = await world.client.patch(
        f"/v1/users/{world.alice_id}", json={"networkIds": [world.north, east]}, headers=world.admin
    )
    await expect_json(response, 200)
    narrow = await expect_json(await world.mint(world.alice, networkIds=[world.north]), 201)
    response = await world.mint(bearer(narrow["access_token"]), networkIds=[east])
    await expect_error(
        response, 403, f"Requested networkIds exceed what the caller and the user may reach: {east}"
    )


async def test_by_default_a_mint_copies_the_callers_rights(world: World) -> None:
    body = await expect_json(await world.mint(world.alice), 201)
    payload = (await token_info(world.client, body["access_token"]))["payload"]
    assert payload["actions"] == sorted(int(a) for a in CLIENT_ACTIONS)
    assert payload["networkIds"] == ["*"]
    assert payload["deviceIds"] == ["*"]
    assert payload["role"] == "client"


async def test_an_admin_mints_for_a_client_within_the_clients_rights(world: World) -> None:
    body = await expect_json(
        await world.mint(
            world.admin,
            user_id=world.alice_id,
            actions=["GetDevice", "CreateDeviceCommand"],
            deviceIds=["n-1"],
        ),
        201,
    )
    assert body["user_id"] == world.alice_id
    payload = (await token_info(world.client, body["access_token"]))["payload"]
    assert payload["sub"] == str(world.alice_id)
    assert payload["role"] == "client"
    assert payload["actions"] == [Action.GetDevice, Action.CreateDeviceCommand]
    assert payload["deviceIds"] == ["n-1"]
    # Without actions, an admin's mint for a client gets the client's role, not the admin's.
    body = await expect_json(await world.mint(world.admin, user_id=world.alice_id), 201)
    payload = (await token_info(world.client, body["access_token"]))["payload"]
    assert payload["actions"] == sorted(int(a) for a in CLIENT_ACTIONS)


async def test_minting_for_missing_or_disabled_users(world: World) -> None:
    await expect_error(await world.mint(world.admin, user_id=999_999), 404, "User not found")
    response = await world.client.patch(
        f"/v1/users/{world.bob_id}", json={"status": "disabled"}, headers=world.admin
    )
    await expect_json(response, 200)
    await expect_error(
        await world.mint(world.admin, user_id=world.bob_id), 403, "User account is disabled"
    )


async def test_mint_input_is_validated(world: World) -> None:
    names = ", ".join(action.name for action in Action)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"actions": ["Root"]}, f"actions[0]: must be one of {names} or must be an integer"),
        ({"actions": [1]}, "actions[0]: must be a string or must be at least 2"),
        ({"actions": "GetDevice"}, "actions: must be an array"),
        ({"networkIds": ["*", world.north]}, 'networkIds: "*" stands alone, meaning all'),
        ({"networkIds": [0]}, "networkIds[0]: must be at least 1"),
        (
            {"deviceIds": ["bad id"]},
            "deviceIds[0]: must match [A-Za-z0-9_-]{1,64}",
        ),
        ({"deviceIds": ["*", "n-1"]}, 'deviceIds: "*" stands alone, meaning all'),
        ({"expires_in": 0}, "expires_in: must be at least 1"),
        ({"expires_in": 366 * 86400}, "expires_in must be at most 31536000 seconds"),
        ({"user_id": "1"}, "user_id: must be an integer"),
        ({"scope": "all"}, "body: unknown field: scope"),
    ]
    for body, message in cases:
        await expect_error(await world.mint(world.alice, **body), 422, message)


async def test_a_wildcard_alone_means_all(world: World) -> None:
    body = await expect_json(await world.mint(world.alice, networkIds=["*"], deviceIds=["*"]), 201)
    payload = (await token_info(world.client, body["access_token"]))["payload"]
    assert payload["networkIds"] == ["*"]
    assert payload["deviceIds"] == ["*"]


async def test_a_token_too_long_to_be_presented_is_not_minted(world: World) -> None:
    """A token travels in an Authorization header, which the HTTP parser caps at 8,190 bytes: a
    mint naming so many devices that its token would not fit is refused, not handed out as a
    token that every request would then reject (89 KB for 1,000 device ids)."""
    many = [f"device-{n:04d}-" + "x" * 40 for n in range(1000)]
    response = await world.mint(world.admin, deviceIds=many)
    assert response.status == 422, await response.text()
    message = (await response.json())["message"]
    assert re.fullmatch(
        r"The token would be [\d,]+ characters, and at most 8,183 fit in an Authorization "
        r"header: name fewer devices or networks",
        message,
    ), message
    fits = await expect_json(await world.mint(world.admin, deviceIds=many[:60]), 201)
    assert len(fits["access_token"]) <= MAX_TOKEN_LENGTH
    me = await world.client.get("/v1/auth/me", headers=bearer(fits["access_token"]))
    assert me.status == 200, await me.text()


async def test_a_token_whose_user_is_gone_mints_nothing(
    world: World, admin: dict[str, Any]
) -> None:
    """A token validly signed for a user that does not exist is as good as revoked: 401, not
    the 404 of a request for a missing user (the long fuzz run signs such tokens)."""
    ghost = resign(admin["access_token"], sub="999999")
    await expect_error(await world.mint(bearer(ghost)), 401, "Token revoked")
