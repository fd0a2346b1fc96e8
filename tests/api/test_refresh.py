"""POST /v1/auth/token/refresh: rotation, reuse detection and scope recomputation."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.auth.permissions import ALL_ACTIONS
from gateway.types import Action
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, bearer, create_user, login
from tests.support.http import (
    PAIR_KEYS,
    create_network,
    expect_error,
    expect_json,
    me_status,
    token_info,
)
from tests.support.tokens import resign, split

REUSE = "Refresh token reuse detected; the session has been revoked"


async def refresh(client: TestClient[Any, Any], token: str) -> Any:
    return await client.post("/v1/auth/token/refresh", json={"refresh_token": token})


async def test_refresh_returns_a_new_pair_in_the_same_session(
    client: TestClient[Any, Any], admin: dict[str, Any]
) -> None:
    body = await expect_json(await refresh(client, admin["refresh_token"]), 200)
    assert set(body) == PAIR_KEYS
    assert body["token_type"] == "Bearer"
    assert body["user_id"] == admin["user_id"]
    assert body["access_token"] != admin["access_token"]
    assert body["refresh_token"] != admin["refresh_token"]
    old_header, old = split(admin["refresh_token"])
    new_header, new = split(body["refresh_token"])
    assert new["sid"] == old["sid"]
    assert new["jti"] != old["jti"]
    assert new["typ"] == "refresh"
    assert new_header == old_header
    payload = (await token_info(client, body["access_token"]))["payload"]
    assert payload["sid"] == old["sid"]
    assert payload["actions"] == sorted(int(a) for a in ALL_ACTIONS)
    assert await me_status(client, body["access_token"]) == 200
    # Rotation does not end the access token that came with the old pair.
    assert await me_status(client, admin["access_token"]) == 200


async def test_the_whole_login_refresh_logout_flow(client: TestClient[Any, Any]) -> None:
    first = await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    second = await expect_json(await refresh(client, first["refresh_token"]), 200)
    third = await expect_json(await refresh(client, second["refresh_token"]), 200)
    assert await me_status(client, third["access_token"]) == 200

    response = await client.post("/v1/auth/logout", headers=bearer(third["access_token"]))
    assert response.status == 204

    for pair in (first, second, third):
        response = await client.get("/v1/auth/me", headers=bearer(pair["access_token"]))
        await expect_error(response, 401, "Token revoked")
    await expect_error(await refresh(client, third["refresh_token"]), 401, "Token revoked")


async def test_presenting_a_consumed_refresh_token_revokes_the_whole_family(
    client: TestClient[Any, Any],
) -> None:
    first = await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    other_session = await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    rotated = await expect_json(await refresh(client, first["refresh_token"]), 200)

    await expect_error(await refresh(client, first["refresh_token"]), 401, REUSE)

    for token in (first["access_token"], rotated["access_token"]):
        response = await client.get("/v1/auth/me", headers=bearer(token))
        await expect_error(response, 401, "Token revoked")
    # The freshly rotated refresh token was the thief's or the owner's: it dies with the family.
    await expect_error(await refresh(client, rotated["refresh_token"]), 401, "Token revoked")
    # Other login sessions of the same user are untouched.
    assert await me_status(client, other_session["access_token"]) == 200
    await expect_json(await refresh(client, other_session["refresh_token"]), 200)


async def test_racing_refreshes_of_one_token_let_exactly_one_through(
    client: TestClient[Any, Any], admin: dict[str, Any]
) -> None:
    responses = await asyncio.gather(
        refresh(client, admin["refresh_token"]), refresh(client, admin["refresh_token"])
    )
    statuses = sorted(response.status for response in responses)
    assert statuses == [200, 401]
    winner = next(r for r in responses if r.status == 200)
    loser = next(r for r in responses if r.status == 401)
    await expect_error(loser, 401, REUSE)
    pair = await winner.json()
    response = await client.get("/v1/auth/me", headers=bearer(pair["access_token"]))
    await expect_error(response, 401, "Token revoked")


async def test_an_access_token_is_not_a_refresh_token(
    client: TestClient[Any, Any], admin: dict[str, Any]
) -> None:
    await expect_error(
        await refresh(client, admin["access_token"]),
        401,
        "Invalid token: expected a refresh token",
    )


async def test_garbage_and_unknown_refresh_tokens_are_invalid(
    client: TestClient[Any, Any], admin: dict[str, Any]
) -> None:
    await expect_error(await refresh(client, "not.a.token"), 401, "Invalid token")
    # Validly signed, but never issued: its jti is unknown to the database.
    unknown = resign(admin["refresh_token"], jti="00000000-0000-4000-8000-000000000000")
    await expect_error(await refresh(client, unknown), 401, "Invalid token")
    # And one whose jti is not even a UUID.
    await expect_error(await refresh(client, resign(unknown, jti="x")), 401, "Invalid token")


async def test_refresh_body_is_validated(client: TestClient[Any, Any]) -> None:
    await expect_error(
        await client.post("/v1/auth/token/refresh", json={}),
        422,
        "body: missing field: refresh_token",
    )
    await expect_error(
        await client.post("/v1/auth/token/refresh", json={"refresh_token": ""}),
        422,
        "refresh_token: must not be empty",
    )
    await expect_error(
        await client.post("/v1/auth/token/refresh", json={"refresh_token": 1}),
        422,
        "refresh_token: must be a string",
    )


async def test_a_role_change_revokes_the_refresh_family(
    client: TestClient[Any, Any], admin_headers: dict[str, str]
) -> None:
    user = await create_user(client, admin_headers, email="dave@example.com")
    pair = await login(client, "dave@example.com", "client-password")
    response = await client.patch(
        f"/v1/users/{user['id']}", json={"role": "admin"}, headers=admin_headers
    )
    await expect_json(response, 200)
    await expect_error(await refresh(client, pair["refresh_token"]), 401, "Token revoked")
    promoted = await login(client, "dave@example.com", "client-password")
    payload = (await token_info(client, promoted["access_token"]))["payload"]
    assert payload["role"] == "admin"
    assert payload["actions"] == sorted(int(a) for a in ALL_ACTIONS)


async def test_refresh_narrows_explicit_networks_to_current_memberships(
    client: TestClient[Any, Any], admin_headers: dict[str, str]
) -> None:
    north = await create_network(client, admin_headers, "north")
    south = await create_network(client, admin_headers, "south")
    user = await create_user(
        client, admin_headers, email="erin@example.com", network_ids=[north, south]
    )
    own = await login(client, "erin@example.com", "client-password")
    response = await client.post(
        "/v1/auth/token/create",
        json={"actions": ["GetNetwork", "GetDevice"], "networkIds": [north, south]},
        headers=bearer(own["access_token"]),
    )
    minted = await expect_json(response, 201)

    response = await client.delete(
        f"/v1/users/{user['id']}/networks/{south}", headers=admin_headers
    )
    assert response.status == 204
    # A membership change revokes nothing ...
    assert (await token_info(client, minted["access_token"]))["payload"]["networkIds"] == [
        north,
        south,
    ]
    # ... but the next refresh is cut down to what the user may reach now.
    renewed = await expect_json(await refresh(client, minted["refresh_token"]), 200)
    payload = (await token_info(client, renewed["access_token"]))["payload"]
    assert payload["networkIds"] == [north]
    assert payload["deviceIds"] == ["*"]
    assert payload["actions"] == [Action.GetNetwork, Action.GetDevice]
    _, refreshed = split(renewed["refresh_token"])
    assert refreshed["networkIds"] == [north]


async def test_refresh_keeps_a_wildcard_scope_wildcard(
    client: TestClient[Any, Any], admin_headers: dict[str, str]
) -> None:
    """A login token covers "every network the owner may see", which memberships keep live."""
    north = await create_network(client, admin_headers, "north")
    await create_user(client, admin_headers, email="finn@example.com", network_ids=[north])
    pair = await login(client, "finn@example.com", "client-password")
    renewed = await expect_json(await refresh(client, pair["refresh_token"]), 200)
    payload = (await token_info(client, renewed["access_token"]))["payload"]
    assert payload["networkIds"] == ["*"]
    assert payload["deviceIds"] == ["*"]


async def test_refresh_of_a_disabled_or_deleted_user_is_refused(
    client: TestClient[Any, Any], admin_headers: dict[str, str]
) -> None:
    disabled = await create_user(client, admin_headers, email="gina@example.com")
    deleted = await create_user(client, admin_headers, email="hank@example.com")
    gina = await login(client, "gina@example.com", "client-password")
    hank = await login(client, "hank@example.com", "client-password")
    response = await client.patch(
        f"/v1/users/{disabled['id']}", json={"status": "disabled"}, headers=admin_headers
    )
    await expect_json(response, 200)
    response = await client.delete(f"/v1/users/{deleted['id']}", headers=admin_headers)
    assert response.status == 204
    await expect_error(await refresh(client, gina["refresh_token"]), 401, "Token revoked")
    await expect_error(await refresh(client, hank["refresh_token"]), 401, "Token revoked")
