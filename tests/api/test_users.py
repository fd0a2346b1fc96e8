"""/v1/users: CRUD, pagination, self-service limits, and what each change revokes."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import WIRING_KEY
from tests.conftest import ADMIN_EMAIL, bearer, create_user, login
from tests.support.http import (
    create_network,
    expect_empty,
    expect_error,
    expect_json,
    me_status,
)

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00")
USER_KEYS = {"id", "name", "email", "role", "status", "networkIds", "created_at", "updated_at"}


def assert_user(body: dict[str, Any], **expected: Any) -> None:
    """Exactly the public user fields (never a password hash), with the given values."""
    assert set(body) == USER_KEYS
    assert isinstance(body["id"], int)
    assert ISO.fullmatch(body["created_at"]), body["created_at"]
    assert ISO.fullmatch(body["updated_at"]), body["updated_at"]
    for key, value in expected.items():
        assert body[key] == value, (key, body[key], value)


async def refresh(client: TestClient[Any, Any], token: str) -> Any:
    return await client.post("/v1/auth/token/refresh", json={"refresh_token": token})


async def test_create_user(client: TestClient[Any, Any], admin_headers: dict[str, str]) -> None:
    north = await create_network(client, admin_headers, "north")
    response = await client.post(
        "/v1/users",
        json={
            "name": "Alice",
            "email": "alice@example.com",
            "password": "s3cret-password",
            "role": "client",
            "networkIds": [north],
        },
        headers=admin_headers,
    )
    body = await expect_json(response, 201)
    assert_user(
        body,
        name="Alice",
        email="alice@example.com",
        role="client",
        status="active",
        networkIds=[north],
    )
    assert body["created_at"] == body["updated_at"]
    pair = await login(client, "alice@example.com", "s3cret-password")
    assert pair["user_id"] == body["id"]


async def test_the_password_is_stored_as_an_argon2id_hash(
    client: TestClient[Any, Any], admin_headers: dict[str, str]
) -> None:
    user = await create_user(client, admin_headers, email="hash@example.com")
    pool = client.app[WIRING_KEY].pool
    stored = await pool.fetchval("SELECT password_hash FROM users WHERE id = $1", user["id"])
    assert stored.startswith("$argon2id$v=19$m=64,t=1,p=1$")
    assert "client-password" not in stored


async def test_duplicate_email_is_a_409_whatever_the_case(
    client: TestClient[Any, Any], admin_headers: dict[str, str]
) -> None:
    await create_user(client, admin_headers, email="dup@example.com")
    response = await client.post(
        "/v1/users",
        json={"name": "x", "email": "DUP@example.com", "password": "password-1", "role": "client"},
        headers=admin_headers,
    )
    await expect_error(response, 409, "a user with email 'DUP@example.com' already exists")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"password": "short"}, "password: must be at least 8 characters"),
        ({"email": "no-at-sign"}, "email: must match [^@\\s]+@[^@\\s]+"),
        (
            {"email": "bo\u200b@example.com"},
            "email: must not contain U+200B (a control or invisible character)",
        ),
        ({"role": "root"}, "role: must be one of admin, client"),
        ({"name": ""}, "name: must not be empty"),
        ({"networkIds": [999]}, "networkIds: no such network: 999"),
        ({"networkIds": ["1"]}, "networkIds[0]: must be an integer"),
        ({"status": "active"}, "body: unknown field: status"),
        ({"password_hash": "x"}, "body: unknown field: password_hash"),
    ],
)
async def test_create_user_validation(
    client: TestClient[Any, Any],
    admin_headers: dict[str, str],
    change: dict[str, Any],
    message: str,
) -> None:
    body = {"name": "n", "email": "v@example.com", "password": "password-1", "role": "client"}
    response = await client.post("/v1/users", json={**body, **change}, headers=admin_headers)
    await expect_error(response, 422, message)


async def test_create_user_requires_every_field(
    client: TestClient[Any, Any], admin_headers: dict[str, str]
) -> None:
    response = await client.post("/v1/users", json={"name": "n"}, headers=admin_headers)
    await expect_error(response, 422, "body: missing field: email, password, role")


async def test_list_users_is_paginated_by_cursor(
    client: TestClient[Any, Any], admin_headers: dict[str, str]
) -> None:
    created = [
        (await create_user(client, admin_headers, email=f"user{i}@example.com"))["id"]
        for i in range(4)
    ]
    everyone = await expect_json(await client.get("/v1/users", headers=admin_headers), 200)
    assert everyone["next_cursor"] is None
    assert [user["email"] for user in everyone["users"]] == [ADMIN_EMAIL] + [
        f"user{i}@example.com" for i in range(4)
    ]
    for user in everyone["users"]:
        assert_user(user)

    seen: list[int] = []
    pages = []
    cursor = None
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = await expect_json(await client.get("/v1/users" + query, headers=admin_headers), 200)
        assert set(page) == {"users", "next_cursor"}
        pages.append(len(page["users"]))
        seen += [user["id"] for user in page["users"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert cursor == str(seen[-1])
    assert pages == [2, 2, 1]
    assert seen == [everyone["users"][0]["id"], *created]


async def test_an_exact_last_page_has_no_next_cursor(
    client: TestClient[Any, Any], admin_headers: dict[str, str]
) -> None:
    await create_user(client, admin_headers, email="only@example.com")
    page = await expect_json(await client.get("/v1/users?limit=2", headers=admin_headers), 200)
    assert len(page["users"]) == 2
    assert page["next_cursor"] is None


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("limit=0", 422, "limit: must be at least 1"),
        ("limit=1001", 422, "limit: must be at most 1000"),
        ("limit=ten", 422, "limit: must be an integer"),
        ("cursor=abc", 422, "cursor: must match \\d{1,18}"),
        ("page=2", 400, "unknown query parameter: page"),
        ("b=1&a=2", 400, "unknown query parameter: a, b"),
    ],
)
async def test_list_users_query_validation(
    client: TestClient[Any, Any],
    admin_headers: dict[str, str],
    query: str,
    status: int,
    message: str,
) -> None:
    response = await client.get(f"/v1/users?{query}", headers=admin_headers)
    await expect_error(response, status, message)


async def test_get_patch_and_delete_a_user(
    client: TestClient[Any, Any], admin_headers: dict[str, str]
) -> None:
    user = await create_user(client, admin_headers, email="bob@example.com", name="Bob")
    path = f"/v1/users/{user['id']}"
    assert await expect_json(await client.get(path, headers=admin_headers), 200) == user

    response = await client.patch(path, json={"name": "Robert"}, headers=admin_headers)
    changed = await expect_json(response, 200)
    assert_user(changed, id=user["id"], name="Robert", email="bob@example.com", role="client")
    assert changed["created_at"] == user["created_at"]
    assert changed["updated_at"] > user["updated_at"]
    assert await expect_json(await client.get(path, headers=admin_headers), 200) == changed

    await expect_empty(await client.delete(path, headers=admin_headers))
    await expect_error(await client.get(path, headers=admin_headers), 404, "User not found")
    await expect_error(await client.delete(path, headers=admin_headers), 404, "User not found")
    response = await client.patch(path, json={"name": "x"}, headers=admin_headers)
    await expect_error(response, 404, "User not found")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/v1/users/abc", "id: must be an integer"),
        ("/v1/users/0", "id: must be at least 1"),
        ("/v1/users/9223372036854775808", "id: must be a 64-bit integer"),
        ("/v1/users/123456789012345678901", "id: must be an integer"),
    ],
)
async def test_user_ids_in_paths_are_validated(
    client: TestClient[Any, Any], admin_headers: dict[str, str], path: str, message: str
) -> None:
    await expect_error(await client.get(path, headers=admin_headers), 422, message)


async def test_a_client_reads_and_renames_only_itself(
    client: TestClient[Any, Any], admin_headers: dict[str, str]
) -> None:
    north = await create_network(client, admin_headers, "north")
    me = await create_user(client, admin_headers, email="carol@example.com", network_ids=[north])
    other = await create_user(client, admin_headers, email="dan@example.com")
    headers = bearer((await login(client, "carol@example.com", "client-password"))["access_token"])
    mine = f"/v1/users/{me['id']}"
    theirs = f"/v1/users/{other['id']}"

    assert await expect_json(await client.get(mine, headers=headers), 200) == me
    assert await expect_json(await client.get("/v1/auth/me", headers=headers), 200) == me
    renamed = await expect_json(await client.patch(mine, json={"name": "C"}, headers=headers), 200)
    assert_user(renamed, id=me["id"], name="C", role="client", networkIds=[north])

    forbidden = "Missing permission: ManageUser"
    await expect_error(await client.get(theirs, headers=headers), 403, forbidden)
    await expect_error(
        await client.patch(theirs, json={"name": "x"}, headers=headers), 403, forbidden
    )
    await expect_error(await client.delete(theirs, headers=headers), 403, forbidden)
    await expect_error(await client.delete(mine, headers=headers), 403, forbidden)
    await expect_error(await client.get("/v1/users", headers=headers), 403, forbidden)
    response = await client.post(
        "/v1/users",
        json={"name": "m", "email": "m@example.com", "password": "password-1", "role": "admin"},
        headers=headers,
    )
    await expect_error(response, 403, forbidden)
    # A missing user is still a 403 for a client: no probing of which ids exist.
    await expect_error(await client.get("/v1/users/999999", headers=headers), 403, forbidden)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"role": "admin"}, "Changing role needs ManageUser"),
        ({"status": "disabled"}, "Changing status needs ManageUser"),
        ({"networkIds": []}, "Changing networkIds needs ManageUser"),
        (
            {"name": "x", "role": "admin", "networkIds": [1]},
            "Changing networkIds, role needs ManageUser",
        ),
    ],
)
async def test_a_client_cannot_change_its_own_role_status_or_networks(
    client: TestClient[Any, Any],
    admin_headers: dict[str, str],
    change: dict[str, Any],
    message: str,
) -> None:
    me = await create_user(client, admin_headers, email="eve@example.com")
    headers = bearer((await login(client, "eve@example.com", "client-password"))["access_token"])
    response = await client.patch(f"/v1/users/{me['id']}", json=change, headers=headers)
    await expect_error(response, 403, message)
    unchanged = await expect_json(await client.get(f"/v1/users/{me['id']}", headers=headers), 200)
    assert unchanged == me


async def test_a_client_changing_its_password_ends_its_sessions(
    client: TestClient[Any, Any], admin_headers: dict[str, str]
) -> None:
    me = await create_user(client, admin_headers, email="fay@example.com")
    pair = await login(client, "fay@example.com", "client-password")
    response = await client.patch(
        f"/v1/users/{me['id']}",
        json={"password": "brand-new-password", "current_password": "client-password"},
        headers=bearer(pair["access_token"]),
    )
    assert_user(await expect_json(response, 200), id=me["id"])
    response = await client.get("/v1/auth/me", headers=bearer(pair["access_token"]))
    await expect_error(response, 401, "Token revoked")
    response = await client.post(
        "/v1/auth/login", json={"email": "fay@example.com", "password": "client-password"}
    )
    await expect_error(response, 401, "Invalid email or password")
    await login(client, "fay@example.com", "brand-new-password")


async def test_ones_own_new_password_takes_the_current_one(
    client: TestClient[Any, Any], admin_headers: dict[str, str]
) -> None:
    """An access token alone (stolen, or minted narrow) must not become the account: the
    current password goes with a new one, checked as a login attempt (throttled alike)."""
    me = await create_user(client, admin_headers, email="gil@example.com")
    headers = bearer((await login(client, "gil@example.com", "client-password"))["access_token"])
    path = f"/v1/users/{me['id']}"
    response = await client.patch(path, json={"password": "brand-new-password"}, headers=headers)
    await expect_error(response, 422, "current_password: needed to change one's own password")
    for _ in range(5):  # GATEWAY_LOGIN_FAILURES_PER_ACCOUNT
        response = await client.patch(
            path,
            json={"password": "brand-new-password", "current_password": "a-wrong-guess"},
            headers=headers,
        )
        await expect_error(response, 403, "current_password: does not match")
    response = await client.patch(
        path,
        json={"password": "brand-new-password", "current_password": "client-password"},
        headers=headers,
    )
    await expect_error(response, 429, "Too many failed logins; try again later")
    assert response.headers["Retry-After"]
    response = await client.post(
        "/v1/auth/login", json={"email": "gil@example.com", "password": "client-password"}
    )
    await expect_error(response, 429, "Too many failed logins; try again later")
    # An administrator sets another user's password without knowing it.
    response = await client.patch(path, json={"password": "reset-by-admin"}, headers=admin_headers)
    assert_user(await expect_json(response, 200), id=me["id"])


@pytest.mark.parametrize(
    "change",
    [{"status": "disabled"}, {"role": "admin"}, {"password": "another-password"}],
    ids=["disable", "role", "password"],
)
async def test_changes_that_revoke_every_token_of_the_user(
    client: TestClient[Any, Any], admin_headers: dict[str, str], change: dict[str, Any]
) -> None:
    user = await create_user(client, admin_headers, email="gus@example.com")
    pair = await login(client, "gus@example.com", "client-password")
    response = await client.patch(f"/v1/users/{user['id']}", json=change, headers=admin_headers)
    await expect_json(response, 200)
    instance = client.app[WIRING_KEY].settings.instance_id
    assert response.headers["X-Sessions-Closed"] == "0"
    assert response.headers["X-Sessions-Closed-By"] == f"{instance}=0"
    response = await client.get("/v1/auth/me", headers=bearer(pair["access_token"]))
    await expect_error(response, 401, "Token revoked")
    await expect_error(await refresh(client, pair["refresh_token"]), 401, "Token revoked")
    # The admin's own tokens are untouched.
    assert await me_status(client, admin_headers["Authorization"].split()[1]) == 200


async def test_deleting_a_user_revokes_their_tokens(
    client: TestClient[Any, Any], admin_headers: dict[str, str]
) -> None:
    user = await create_user(client, admin_headers, email="hal@example.com")
    pair = await login(client, "hal@example.com", "client-password")
    response = await client.delete(f"/v1/users/{user['id']}", headers=admin_headers)
    await expect_empty(response)
    assert response.headers["X-Sessions-Closed"] == "0"
    response = await client.get("/v1/auth/me", headers=bearer(pair["access_token"]))
    await expect_error(response, 401, "Token revoked")
    await expect_error(await refresh(client, pair["refresh_token"]), 401, "Token revoked")


async def test_changes_that_revoke_nothing(
    client: TestClient[Any, Any], admin_headers: dict[str, str]
) -> None:
    north = await create_network(client, admin_headers, "north")
    south = await create_network(client, admin_headers, "south")
    user = await create_user(client, admin_headers, email="ida@example.com", network_ids=[north])
    pair = await login(client, "ida@example.com", "client-password")
    path = f"/v1/users/{user['id']}"
    changes: tuple[dict[str, Any], ...] = (
        {"name": "Ida"},
        {"networkIds": [north, south]},
        {"networkIds": []},
        {"role": "client"},
        {"status": "active"},
    )
    for change in changes:
        response = await client.patch(path, json=change, headers=admin_headers)
        await expect_json(response, 200)
        assert "X-Sessions-Closed" not in response.headers
    response = await client.put(f"{path}/networks/{south}", headers=admin_headers)
    await expect_empty(response)
    assert await me_status(client, pair["access_token"]) == 200
    renewed = await expect_json(await refresh(client, pair["refresh_token"]), 200)
    assert await me_status(client, renewed["access_token"]) == 200
    current = await expect_json(await client.get(path, headers=admin_headers), 200)
    assert_user(current, name="Ida", role="client", status="active", networkIds=[south])


async def test_re_enabling_a_user_lets_them_log_in_again(
    client: TestClient[Any, Any], admin_headers: dict[str, str]
) -> None:
    user = await create_user(client, admin_headers, email="jo@example.com")
    path = f"/v1/users/{user['id']}"
    await expect_json(
        await client.patch(path, json={"status": "disabled"}, headers=admin_headers), 200
    )
    enabled = await expect_json(
        await client.patch(path, json={"status": "active"}, headers=admin_headers), 200
    )
    assert_user(enabled, status="active")
    pair = await login(client, "jo@example.com", "client-password")
    assert await me_status(client, pair["access_token"]) == 200


async def test_user_objects_never_carry_a_password_hash(
    client: TestClient[Any, Any], admin_headers: dict[str, str]
) -> None:
    user = await create_user(client, admin_headers, email="kim@example.com")
    pair = await login(client, "kim@example.com", "client-password")
    path = f"/v1/users/{user['id']}"
    bodies = [
        user,
        await expect_json(await client.get(path, headers=admin_headers), 200),
        await expect_json(await client.patch(path, json={"name": "K"}, headers=admin_headers), 200),
        await expect_json(
            await client.get("/v1/auth/me", headers=bearer(pair["access_token"])), 200
        ),
        *(await expect_json(await client.get("/v1/users", headers=admin_headers), 200))["users"],
    ]
    for body in bodies:
        assert set(body) == USER_KEYS
        assert "argon2" not in str(body)
