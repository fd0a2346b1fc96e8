"""POST /v1/auth/login: the token pair, the name field aliases, uniform failures, throttling."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.auth.permissions import ALL_ACTIONS, CLIENT_ACTIONS
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, AppFactory, bearer, create_user, login
from tests.support.http import PAIR_KEYS, expect_error, expect_json, token_info
from tests.support.tokens import split

ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def assert_token_pair(body: dict[str, Any], user_id: int, expires_in: int = 1800) -> None:
    assert set(body) == PAIR_KEYS
    assert body["token_type"] == "Bearer"
    assert body["user_id"] == user_id
    assert isinstance(body["access_token"], str) and body["access_token"].count(".") == 2
    assert isinstance(body["refresh_token"], str) and body["refresh_token"].count(".") == 2
    assert body["access_token"] != body["refresh_token"]
    assert body["expires_in"] == expires_in
    assert ISO_UTC.fullmatch(body["issued_at"]), body["issued_at"]
    assert ISO_UTC.fullmatch(body["expires_at"]), body["expires_at"]
    _, access = split(body["access_token"])
    assert body["issued_at"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(access["iat"]))
    assert body["expires_at"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(access["exp"]))


async def test_login_by_email_returns_a_bearer_token_pair(
    client: TestClient[Any, Any],
) -> None:
    response = await client.post(
        "/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    body = await expect_json(response, 200)
    me = await expect_json(
        await client.get("/v1/auth/me", headers=bearer(body["access_token"])), 200
    )
    assert_token_pair(body, me["id"])

    info = await token_info(client, body["access_token"])
    payload = info["payload"]
    assert set(payload) == {
        "iss", "sub", "jti", "iat", "exp", "typ", "sid", "role", "actions", "networkIds",
        "deviceIds",
    }  # fmt: skip
    assert payload["iss"] == "gateway"
    assert payload["sub"] == str(me["id"])
    assert payload["typ"] == "access"
    assert payload["role"] == "admin"
    assert payload["actions"] == sorted(int(a) for a in ALL_ACTIONS)
    assert payload["networkIds"] == ["*"]
    assert payload["deviceIds"] == ["*"]
    # iat is dated before the account was read (a cut-off during the password check covers the
    # token); the lifetime counts from when it was signed, so it may span one more second.
    assert payload["exp"] - int(payload["iat"]) in (1800, 1801)
    _, refresh = split(body["refresh_token"])
    assert refresh["typ"] == "refresh"
    assert refresh["sid"] == payload["sid"]
    assert refresh["jti"] != payload["jti"]
    assert refresh["exp"] - int(refresh["iat"]) in (30 * 86400, 30 * 86400 + 1)


async def test_a_client_login_carries_the_client_actions(
    client: TestClient[Any, Any], admin_headers: dict[str, str]
) -> None:
    user = await create_user(client, admin_headers, email="alice@example.com")
    pair = await login(client, "alice@example.com", "client-password")
    assert_token_pair(pair, user["id"])
    payload = (await token_info(client, pair["access_token"]))["payload"]
    assert payload["role"] == "client"
    assert payload["actions"] == sorted(int(a) for a in CLIENT_ACTIONS)


async def test_login_and_username_are_accepted_as_the_name_field(
    client: TestClient[Any, Any],
) -> None:
    for field in ("login", "username"):
        response = await client.post(
            "/v1/auth/login", json={field: ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        body = await expect_json(response, 200)
        assert set(body) == PAIR_KEYS


async def test_the_name_is_matched_case_insensitively_and_trimmed(
    client: TestClient[Any, Any],
) -> None:
    response = await client.post(
        "/v1/auth/login", json={"email": "  Admin@EXAMPLE.com ", "password": ADMIN_PASSWORD}
    )
    assert set(await expect_json(response, 200)) == PAIR_KEYS


async def test_exactly_one_name_field_is_required(client: TestClient[Any, Any]) -> None:
    two = {"email": ADMIN_EMAIL, "login": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    none = {"password": ADMIN_PASSWORD}
    for body in (two, none):
        response = await client.post("/v1/auth/login", json=body)
        await expect_error(response, 422, "give exactly one of email, login or username")


async def test_wrong_password_and_unknown_user_get_the_same_401(
    client: TestClient[Any, Any],
) -> None:
    wrong = await client.post(
        "/v1/auth/login", json={"email": ADMIN_EMAIL, "password": "not-the-password"}
    )
    unknown = await client.post(
        "/v1/auth/login", json={"email": "nobody@example.com", "password": ADMIN_PASSWORD}
    )
    first = await expect_error(wrong, 401, "Invalid email or password")
    second = await expect_error(unknown, 401, "Invalid email or password")
    assert first != second
    assert dict(wrong.headers).keys() - {"X-Request-ID", "Date"} == dict(unknown.headers).keys() - {
        "X-Request-ID",
        "Date",
    }


async def test_a_disabled_user_cannot_log_in_but_learns_nothing_without_the_password(
    client: TestClient[Any, Any], admin_headers: dict[str, str]
) -> None:
    user = await create_user(client, admin_headers, email="bob@example.com")
    response = await client.patch(
        f"/v1/users/{user['id']}", json={"status": "disabled"}, headers=admin_headers
    )
    await expect_json(response, 200)
    right = await client.post(
        "/v1/auth/login", json={"email": "bob@example.com", "password": "client-password"}
    )
    await expect_error(right, 403, "User account is disabled")
    wrong = await client.post(
        "/v1/auth/login", json={"email": "bob@example.com", "password": "guess-guess"}
    )
    await expect_error(wrong, 401, "Invalid email or password")


async def test_repeated_failures_for_one_account_are_throttled_with_retry_after(
    make_client: AppFactory,
) -> None:
    client = await make_client(login_failures_per_account=3, login_failure_window=60.0)
    wrong = {"email": ADMIN_EMAIL, "password": "wrong-password"}
    for _ in range(3):
        await expect_error(
            await client.post("/v1/auth/login", json=wrong), 401, "Invalid email or password"
        )
    for body in (wrong, {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}):
        response = await client.post("/v1/auth/login", json=body)
        await expect_error(response, 429, "Too many failed logins; try again later")
        assert 1 <= int(response.headers["Retry-After"]) <= 60
    # Another spelling of the same account is the same account.
    response = await client.post(
        "/v1/auth/login", json={"email": "Admin@Example.com ", "password": ADMIN_PASSWORD}
    )
    await expect_error(response, 429, "Too many failed logins; try again later")


async def test_throttling_per_account_spares_other_accounts(
    make_client: AppFactory,
) -> None:
    client = await make_client(login_failures_per_account=3)
    admin = await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    await create_user(client, bearer(admin["access_token"]), email="carol@example.com")
    for _ in range(3):
        await client.post("/v1/auth/login", json={"email": ADMIN_EMAIL, "password": "nope-nope"})
    pair = await login(client, "carol@example.com", "client-password")
    assert set(pair) == PAIR_KEYS


async def test_repeated_failures_from_one_address_are_throttled_across_accounts(
    make_client: AppFactory,
) -> None:
    client = await make_client(login_failures_per_account=100, login_failures_per_address=3)
    for index in range(3):
        response = await client.post(
            "/v1/auth/login", json={"email": f"guess{index}@example.com", "password": "x"}
        )
        await expect_error(response, 401, "Invalid email or password")
    response = await client.post(
        "/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    await expect_error(response, 429, "Too many failed logins; try again later")
    assert int(response.headers["Retry-After"]) >= 1


async def test_a_successful_login_forgives_the_accounts_earlier_failures(
    make_client: AppFactory,
) -> None:
    client = await make_client(login_failures_per_account=3, login_failures_per_address=100)
    wrong = {"email": ADMIN_EMAIL, "password": "wrong-password"}
    for _ in range(2):
        await client.post("/v1/auth/login", json=wrong)
    await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    for _ in range(2):
        response = await client.post("/v1/auth/login", json=wrong)
        await expect_error(response, 401, "Invalid email or password")
    await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)


async def test_concurrent_failures_cannot_outrun_the_throttle(make_client: AppFactory) -> None:
    """Guesses sent all at once must not each slip past the check before any is counted."""
    client = await make_client(login_failures_per_account=3, login_failures_per_address=100)
    wrong = {"email": ADMIN_EMAIL, "password": "wrong-password"}
    responses = await asyncio.gather(
        *(client.post("/v1/auth/login", json=wrong) for _ in range(12))
    )
    statuses = sorted(response.status for response in responses)
    assert statuses == [401] * 3 + [429] * 9
    for response in responses:
        message = (await response.json())["message"]
        expected = {
            401: "Invalid email or password",
            429: "Too many failed logins; try again later",
        }
        assert message == expected[response.status]


async def test_concurrent_logins_all_succeed_with_distinct_tokens(
    client: TestClient[Any, Any],
) -> None:
    responses = await asyncio.gather(
        *(
            client.post("/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
            for _ in range(20)
        )
    )
    bodies = [await expect_json(response, 200) for response in responses]
    for body in bodies:
        assert set(body) == PAIR_KEYS
    access = [split(body["access_token"])[1] for body in bodies]
    refresh = [split(body["refresh_token"])[1] for body in bodies]
    assert len({claims["jti"] for claims in access + refresh}) == 40
    assert len({claims["sid"] for claims in access}) == 20
    statuses = await asyncio.gather(
        *(client.get("/v1/auth/me", headers=bearer(body["access_token"])) for body in bodies)
    )
    assert [response.status for response in statuses] == [200] * 20
