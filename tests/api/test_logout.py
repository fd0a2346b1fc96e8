"""POST /v1/auth/logout and /v1/auth/logout/all."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, bearer, create_user, login
from tests.support.http import expect_empty, expect_error, expect_json, me_status


async def refresh(client: TestClient[Any, Any], token: str) -> Any:
    return await client.post("/v1/auth/token/refresh", json={"refresh_token": token})


async def test_logout_ends_the_token_and_its_refresh_family(
    client: TestClient[Any, Any],
) -> None:
    pair = await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    other = await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)

    await expect_empty(await client.post("/v1/auth/logout", headers=bearer(pair["access_token"])))

    response = await client.get("/v1/auth/me", headers=bearer(pair["access_token"]))
    await expect_error(response, 401, "Token revoked")
    await expect_error(await refresh(client, pair["refresh_token"]), 401, "Token revoked")
    # Another login session of the same user lives on.
    assert await me_status(client, other["access_token"]) == 200
    await expect_json(await refresh(client, other["refresh_token"]), 200)


async def test_logout_ends_access_tokens_rotated_earlier_in_the_family(
    client: TestClient[Any, Any], admin: dict[str, Any]
) -> None:
    rotated = await expect_json(await refresh(client, admin["refresh_token"]), 200)
    await expect_empty(
        await client.post("/v1/auth/logout", headers=bearer(rotated["access_token"]))
    )
    for token in (admin["access_token"], rotated["access_token"]):
        response = await client.get("/v1/auth/me", headers=bearer(token))
        await expect_error(response, 401, "Token revoked")


async def test_logging_out_twice_is_a_401(
    client: TestClient[Any, Any], admin: dict[str, Any]
) -> None:
    headers = bearer(admin["access_token"])
    await expect_empty(await client.post("/v1/auth/logout", headers=headers))
    await expect_error(await client.post("/v1/auth/logout", headers=headers), 401, "Token revoked")


async def test_logout_needs_a_bearer_token(client: TestClient[Any, Any]) -> None:
    await expect_error(
        await client.post("/v1/auth/logout"),
        401,
        "Missing Authorization header (expected: Bearer <access token>)",
    )
    await expect_error(
        await client.post("/v1/auth/logout", headers={"Authorization": "Basic YTpi"}),
        401,
        "Malformed Authorization header (expected: Bearer <access token>)",
    )


async def test_a_refresh_token_cannot_log_out(
    client: TestClient[Any, Any], admin: dict[str, Any]
) -> None:
    response = await client.post("/v1/auth/logout", headers=bearer(admin["refresh_token"]))
    await expect_error(response, 401, "Invalid token: expected an access token")
    assert await me_status(client, admin["access_token"]) == 200


async def test_logout_all_ends_every_session_of_the_user_only(
    client: TestClient[Any, Any], admin_headers: dict[str, str]
) -> None:
    await create_user(client, admin_headers, email="ivy@example.com")
    laptop = await login(client, "ivy@example.com", "client-password")
    phone = await login(client, "ivy@example.com", "client-password")
    phone_rotated = await expect_json(await refresh(client, phone["refresh_token"]), 200)

    await expect_empty(
        await client.post("/v1/auth/logout/all", headers=bearer(laptop["access_token"]))
    )

    for pair in (laptop, phone, phone_rotated):
        response = await client.get("/v1/auth/me", headers=bearer(pair["access_token"]))
        await expect_error(response, 401, "Token revoked")
    for token in (laptop["refresh_token"], phone_rotated["refresh_token"]):
        await expect_error(await refresh(client, token), 401, "Token revoked")
    # Other users are untouched, and the user may log in again at once.
    assert await me_status(client, admin_headers["Authorization"].split()[1]) == 200
    again = await login(client, "ivy@example.com", "client-password")
    assert await me_status(client, again["access_token"]) == 200
    await expect_json(await refresh(client, again["refresh_token"]), 200)


async def test_logout_all_ends_minted_tokens_too(
    client: TestClient[Any, Any], admin: dict[str, Any]
) -> None:
    response = await client.post(
        "/v1/auth/token/create",
        json={"actions": ["GetCurrentUser"]},
        headers=bearer(admin["access_token"]),
    )
    minted = await expect_json(response, 201)
    await expect_empty(
        await client.post("/v1/auth/logout/all", headers=bearer(admin["access_token"]))
    )
    response = await client.get("/v1/auth/me", headers=bearer(minted["access_token"]))
    await expect_error(response, 401, "Token revoked")
    await expect_error(await refresh(client, minted["refresh_token"]), 401, "Token revoked")


async def test_a_narrowed_token_cannot_end_every_session_of_its_user(
    client: TestClient[Any, Any], admin: dict[str, Any]
) -> None:
    """A token minted narrow (a device's) stolen or misused must not log its user out
    everywhere; it may end its own family."""
    response = await client.post(
        "/v1/auth/token/create",
        json={"actions": ["GetCurrentUser"]},
        headers=bearer(admin["access_token"]),
    )
    minted = await expect_json(response, 201)
    response = await client.post("/v1/auth/logout/all", headers=bearer(minted["access_token"]))
    await expect_error(
        response,
        403,
        "logout/all needs a token with every right of its user; "
        "a narrowed token ends its own family with /v1/auth/logout",
    )
    assert await me_status(client, admin["access_token"]) == 200
    await expect_empty(await client.post("/v1/auth/logout", headers=bearer(minted["access_token"])))
    assert await me_status(client, minted["access_token"]) == 401
    assert await me_status(client, admin["access_token"]) == 200


@pytest.fixture
async def login_sessions_refuse_updates(clean_db: str) -> AsyncIterator[None]:
    """A trigger that makes PostgreSQL refuse any change to ``login_sessions`` (the test's own
    database; dropped afterwards, as the database outlives the test)."""
    conn = await asyncpg.connect(clean_db)
    try:
        await conn.execute(
            """CREATE FUNCTION refuse_by_test() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
               CREATE TRIGGER refuse_by_test BEFORE UPDATE ON login_sessions
               FOR EACH ROW EXECUTE FUNCTION refuse_by_test()"""
        )
        yield
    finally:
        await conn.execute(
            "DROP TRIGGER IF EXISTS refuse_by_test ON login_sessions; "
            "DROP FUNCTION IF EXISTS refuse_by_test()"
        )
        await conn.close()


@pytest.mark.parametrize("path", ["/v1/auth/logout", "/v1/auth/logout/all"])
async def test_a_logout_in_force_succeeds_when_marking_its_sessions_closed_fails(
    client: TestClient[Any, Any],
    admin: dict[str, Any],
    login_sessions_refuse_updates: None,
    caplog: pytest.LogCaptureFixture,
    path: str,
) -> None:
    """The revocation is stored and sent before the login sessions are marked closed. When that
    last step fails, the logout has taken effect all the same: it answers 204 (an error would
    send the client to retry, and the retry would get 401) and the failure is logged."""
    await expect_empty(await client.post(path, headers=bearer(admin["access_token"])))

    response = await client.get("/v1/auth/me", headers=bearer(admin["access_token"]))
    await expect_error(response, 401, "Token revoked")
    await expect_error(await refresh(client, admin["refresh_token"]), 401, "Token revoked")
    marked = [r for r in caplog.records if "could not be marked closed" in r.getMessage()]
    assert len(marked) == 1, caplog.text
    assert marked[0].levelname == "ERROR"
    assert "refused by the test" in caplog.text
