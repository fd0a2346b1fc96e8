"""Nothing issued survives a revocation it raced: a login whose slow password hash straddles a
password change or a cut-off, on the same instance or another, answers nothing usable; so does a
refresh held between its read and its answer.

The hash is made slow with real argon2 cost; the hooks below only observe (or hold) the real
call, so the test knows the login is inside its hash instead of guessing with a sleep.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.app import WIRING_KEY
from gateway.auth.login import RACED
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, AppFactory, bearer, create_user, login
from tests.realtime.helpers import connect
from tests.support.http import expect_empty, expect_error, expect_json, me_status
from tests.support.tokens import split

SLOW_HASH = {"argon2_time_cost": 300, "argon2_memory_kib": 1024, "hash_workers": 2}
"""Real argon2id, a few hundred milliseconds per hash on the test machine."""

OLD, NEW = "old-password-1", "new-password-2"


def hold_verify(client: TestClient[Any, Any]) -> asyncio.Event:
    """An event set when the instance's next password check starts hashing."""
    passwords = client.app[WIRING_KEY].auth.passwords
    real: Callable[[str | None, str], Awaitable[bool]] = passwords.verify
    hashing = asyncio.Event()

    async def verify(password_hash: str | None, password: str) -> bool:
        hashing.set()
        return await real(password_hash, password)

    passwords.verify = verify
    return hashing


async def start_login(client: TestClient[Any, Any], email: str) -> asyncio.Task[Any]:
    return asyncio.create_task(
        client.post("/v1/auth/login", json={"email": email, "password": OLD})
    )


async def slow_world(make_client: AppFactory) -> tuple[TestClient[Any, Any], dict[str, str], int]:
    client = await make_client(**SLOW_HASH)
    admin = bearer((await login(client, ADMIN_EMAIL, ADMIN_PASSWORD))["access_token"])
    alice = await create_user(client, admin, email="alice@example.com", password=OLD)
    return client, admin, alice["id"]


async def test_a_login_straddling_a_password_change_on_another_instance_is_refused(
    make_client: AppFactory,
) -> None:
    slow, _, alice_id = await slow_world(make_client)
    other = await make_client()
    other_admin = bearer((await login(other, ADMIN_EMAIL, ADMIN_PASSWORD))["access_token"])
    hashing = hold_verify(slow)

    pending = await start_login(slow, "alice@example.com")
    await asyncio.wait_for(hashing.wait(), 10)
    changed = await other.patch(
        f"/v1/users/{alice_id}", json={"password": NEW}, headers=other_admin
    )
    await expect_json(changed, 200)
    assert not pending.done(), "the password changed while the login was hashing"

    await expect_error(await pending, 401, RACED)
    await login(slow, "alice@example.com", NEW)


async def test_a_login_straddling_a_cut_off_on_the_same_instance_is_refused(
    make_client: AppFactory,
) -> None:
    client, admin, alice_id = await slow_world(make_client)
    hashing = hold_verify(client)

    pending = await start_login(client, "alice@example.com")
    await asyncio.wait_for(hashing.wait(), 10)
    revoked = await client.post("/v1/auth/revoke", json={"user_id": alice_id}, headers=admin)
    await expect_json(revoked, 200)
    assert not pending.done()

    await expect_error(await pending, 401, RACED)
    await login(client, "alice@example.com", OLD)


async def test_a_login_racing_a_password_change_on_its_own_instance_yields_no_usable_token(
    make_client: AppFactory,
) -> None:
    """Both hash slowly here, so either may finish first: whatever the login answers, nothing
    it answers works once the change is done."""
    client, admin, alice_id = await slow_world(make_client)
    hashing = hold_verify(client)

    pending = await start_login(client, "alice@example.com")
    await asyncio.wait_for(hashing.wait(), 10)
    changed = await client.patch(f"/v1/users/{alice_id}", json={"password": NEW}, headers=admin)
    await expect_json(changed, 200)

    response = await pending
    if response.status == 200:
        body = await response.json()
        assert await me_status(client, body["access_token"]) == 401
        refreshed = await client.post(
            "/v1/auth/token/refresh", json={"refresh_token": body["refresh_token"]}
        )
        await expect_error(refreshed, 401, "Token revoked")
    else:
        await expect_error(response, 401, RACED)


async def test_a_refresh_held_across_a_logout_everywhere_on_another_instance_is_refused(
    make_client: AppFactory,
) -> None:
    first = await make_client()
    second = await make_client()
    pair = await login(first, ADMIN_EMAIL, ADMIN_PASSWORD)

    users = first.app[WIRING_KEY].auth.users
    real_get = users.get
    read, release = asyncio.Event(), asyncio.Event()

    async def get(user_id: int) -> Any:
        user = await real_get(user_id)
        read.set()
        await release.wait()
        return user

    users.get = get
    pending = asyncio.create_task(
        first.post("/v1/auth/token/refresh", json={"refresh_token": pair["refresh_token"]})
    )
    await asyncio.wait_for(read.wait(), 10)
    logout = await second.post("/v1/auth/logout/all", headers=bearer(pair["access_token"]))
    assert logout.status == 204
    release.set()

    await expect_error(await pending, 401, "Token revoked")


async def test_an_instance_that_has_not_heard_of_a_revocation_mints_nothing_from_it(
    make_client: AppFactory,
) -> None:
    """Without a shared bus and before reconciliation, the other instance's view is stale:
    PostgreSQL, checked when the new token is recorded, is not."""
    stale = await make_client(reconcile_interval=3600.0)
    other = await make_client(reconcile_interval=3600.0)
    admin = bearer((await login(other, ADMIN_EMAIL, ADMIN_PASSWORD))["access_token"])
    await create_user(other, admin, email="alice@example.com", password=OLD)

    cut_off = await login(stale, "alice@example.com", OLD)
    await expect_empty(
        await other.post("/v1/auth/logout/all", headers=bearer(cut_off["access_token"]))
    )
    assert await me_status(stale, cut_off["access_token"]) == 200, "the view is stale"
    rotated = await stale.post(
        "/v1/auth/token/refresh", json={"refresh_token": cut_off["refresh_token"]}
    )
    await expect_error(rotated, 401, "Token revoked")

    by_jti = await login(stale, "alice@example.com", OLD)
    jti = split(by_jti["refresh_token"])[1]["jti"]
    revoked = await other.post("/v1/auth/revoke", json={"jti": jti}, headers=admin)
    await expect_json(revoked, 200)
    socket = await connect(stale)
    await socket.fails("token/refresh", 401, "Token revoked", refreshToken=by_jti["refresh_token"])
    minted = await stale.post(
        "/v1/auth/token/create", json={}, headers=bearer(cut_off["access_token"])
    )
    await expect_error(minted, 401, "Your login session has ended; log in again")


async def test_a_device_revocation_not_yet_heard_of_still_stops_a_refresh(
    make_client: AppFactory,
) -> None:
    stale = await make_client(reconcile_interval=3600.0)
    other = await make_client(reconcile_interval=3600.0)
    admin = (await login(stale, ADMIN_EMAIL, ADMIN_PASSWORD))["access_token"]
    minted = await stale.post(
        "/v1/auth/token/create", json={"deviceIds": ["dev-x"]}, headers=bearer(admin)
    )
    pair = await expect_json(minted, 201)
    other_admin = (await login(other, ADMIN_EMAIL, ADMIN_PASSWORD))["access_token"]
    revoked = await other.post(
        "/v1/auth/revoke", json={"device_id": "dev-x"}, headers=bearer(other_admin)
    )
    await expect_json(revoked, 200)
    assert await me_status(stale, pair["access_token"]) == 200, "the view is stale"

    socket = await connect(stale)
    await socket.fails("token/refresh", 401, "Token revoked", refreshToken=pair["refresh_token"])
    rotated = await stale.post(
        "/v1/auth/token/refresh", json={"refresh_token": pair["refresh_token"]}
    )
    await expect_error(rotated, 401, "Token revoked")
