"""POST /v1/auth/revoke (ManageUser): one token, every token of a user, or every token scoped
to a device; the answer is the receipt of closed live sessions."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from gateway.app import WIRING_KEY
from tests.conftest import bearer, create_user, login
from tests.support.http import (
    create_device,
    create_network,
    expect_error,
    expect_json,
    me_status,
)
from tests.support.tokens import split


def receipt(client: TestClient[Any, Any]) -> dict[str, Any]:
    instance = client.app[WIRING_KEY].settings.instance_id
    return {"sessions_closed": 0, "instances": [{"instance": instance, "sessions_closed": 0}]}


async def revoke(client: TestClient[Any, Any], headers: dict[str, str], **body: Any) -> Any:
    return await client.post("/v1/auth/revoke", json=body, headers=headers)


async def test_revoking_one_token_by_jti(
    client: TestClient[Any, Any], admin_headers: dict[str, str]
) -> None:
    await create_user(client, admin_headers, email="amy@example.com")
    first = await login(client, "amy@example.com", "client-password")
    second = await login(client, "amy@example.com", "client-password")
    jti = split(first["access_token"])[1]["jti"]
    response = await revoke(client, admin_headers, jti=jti)
    assert await expect_json(response, 200) == receipt(client)
    response = await client.get("/v1/auth/me", headers=bearer(first["access_token"]))
    await expect_error(response, 401, "Token revoked")
    assert await me_status(client, second["access_token"]) == 200


async def test_revoking_every_token_of_a_user(
    client: TestClient[Any, Any], admin_headers: dict[str, str]
) -> None:
    user = await create_user(client, admin_headers, email="ben@example.com")
    pair = await login(client, "ben@example.com", "client-password")
    response = await revoke(client, admin_headers, user_id=user["id"])
    assert await expect_json(response, 200) == receipt(client)
    response = await client.get("/v1/auth/me", headers=bearer(pair["access_token"]))
    await expect_error(response, 401, "Token revoked")
    response = await client.post(
        "/v1/auth/token/refresh", json={"refresh_token": pair["refresh_token"]}
    )
    await expect_error(response, 401, "Token revoked")
    await expect_error(await revoke(client, admin_headers, user_id=999_999), 404, "User not found")


async def test_revoking_a_device_ends_the_tokens_scoped_to_it(
    client: TestClient[Any, Any], admin_headers: dict[str, str]
) -> None:
    north = await create_network(client, admin_headers, "north")
    await create_device(client, admin_headers, "pump-1", north)
    await create_device(client, admin_headers, "pump-2", north)
    await create_user(client, admin_headers, email="cy@example.com", network_ids=[north])
    own = bearer((await login(client, "cy@example.com", "client-password"))["access_token"])

    async def mint(device_ids: list[str]) -> str:
        response = await client.post(
            "/v1/auth/token/create",
            json={"actions": ["GetCurrentUser"], "deviceIds": device_ids},
            headers=own,
        )
        token: str = (await expect_json(response, 201))["access_token"]
        return token

    scoped = await mint(["pump-1", "pump-2"])
    other = await mint(["pump-2"])
    response = await revoke(client, admin_headers, device_id="pump-1")
    assert await expect_json(response, 200) == receipt(client)
    await expect_error(
        await client.get("/v1/auth/me", headers=bearer(scoped)), 401, "Token revoked"
    )
    assert await me_status(client, other) == 200
    # A token for "all my devices" is not scoped to the device; it stays.
    assert await me_status(client, own["Authorization"].split()[1]) == 200
    # Tokens minted after the revocation are not caught by it.
    assert await me_status(client, await mint(["pump-1"])) == 200


async def test_revoke_needs_exactly_one_subject_and_manage_user(
    client: TestClient[Any, Any], admin_headers: dict[str, str]
) -> None:
    for body in ({}, {"jti": "x", "user_id": 1}):
        await expect_error(
            await revoke(client, admin_headers, **body),
            422,
            "give exactly one of jti, user_id or device_id",
        )
    user = await create_user(client, admin_headers, email="dee@example.com")
    headers = bearer((await login(client, "dee@example.com", "client-password"))["access_token"])
    await expect_error(
        await revoke(client, headers, user_id=user["id"]), 403, "Missing permission: ManageUser"
    )
