"""No lockout by strangers: failures for a victim's account from one address throttle that
address, never the victim logging in from their own, over REST and the WebSocket ``token``
action alike."""

from __future__ import annotations

import ipaddress
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.auth.throttle import TOO_MANY
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, AppFactory, bearer, create_user, login
from tests.realtime.helpers import Peer
from tests.support.http import expect_error, expect_json

LOCAL = (ipaddress.ip_network("127.0.0.0/8"),)
ATTACKER, VICTIM, OTHER = "203.0.113.9", "198.51.100.7", "192.0.2.44"


async def attempt(client: TestClient[Any, Any], email: str, password: str, address: str) -> Any:
    return await client.post(
        "/v1/auth/login",
        json={"email": email, "password": password},
        headers={"X-Forwarded-For": address},
    )


async def socket_from(client: TestClient[Any, Any], address: str) -> Peer:
    ws = await client.ws_connect("/v1/ws", headers={"X-Forwarded-For": address})
    return Peer(ws)


async def gateway(make_client: AppFactory, **overrides: Any) -> TestClient[Any, Any]:
    settings = {
        "trusted_proxies": LOCAL,
        "login_failures_per_account": 5,
        "login_failures_per_address": 20,
        **overrides,
    }
    client = await make_client(**settings)
    admin = bearer((await login(client, ADMIN_EMAIL, ADMIN_PASSWORD))["access_token"])
    await create_user(client, admin, email="alice@example.com", password="alice-password")
    return client


async def test_a_stranger_guessing_is_throttled_while_the_victim_logs_in_from_home(
    make_client: AppFactory,
) -> None:
    client = await gateway(make_client)
    for _ in range(5):
        response = await attempt(client, "alice@example.com", "guess-guess", ATTACKER)
        await expect_error(response, 401, "Invalid email or password")
    for password in ("guess-again", "alice-password"):
        response = await attempt(client, "alice@example.com", password, ATTACKER)
        await expect_error(response, 429, TOO_MANY)
        assert 1 <= int(response.headers["Retry-After"]) <= 300

    victim = await attempt(client, "alice@example.com", "alice-password", VICTIM)
    assert set(await expect_json(victim, 200)) >= {"access_token", "refresh_token"}
    # ...and from any other address that has not been failing.
    await expect_json(await attempt(client, "alice@example.com", "alice-password", OTHER), 200)


async def test_one_address_cannot_lock_out_several_accounts_the_admin_included(
    make_client: AppFactory,
) -> None:
    client = await gateway(make_client)
    accounts = [("alice@example.com", "alice-password"), (ADMIN_EMAIL, ADMIN_PASSWORD)]
    for email, _ in accounts:
        for _ in range(5):
            await attempt(client, email, "guess-guess", ATTACKER)
        await expect_error(await attempt(client, email, "guess-guess", ATTACKER), 429, TOO_MANY)
    for email, password in accounts:
        await expect_json(await attempt(client, email, password, VICTIM), 200)


async def test_an_address_failing_across_accounts_is_throttled_for_every_account(
    make_client: AppFactory,
) -> None:
    client = await gateway(make_client, login_failures_per_address=4)
    for index in range(4):
        response = await attempt(client, f"guess{index}@example.com", "x-x-x-x", ATTACKER)
        await expect_error(response, 401, "Invalid email or password")
    response = await attempt(client, "alice@example.com", "alice-password", ATTACKER)
    await expect_error(response, 429, TOO_MANY)
    await expect_json(await attempt(client, "alice@example.com", "alice-password", VICTIM), 200)


async def test_the_websocket_token_action_follows_the_same_rules(make_client: AppFactory) -> None:
    client = await gateway(make_client)
    attacker = await socket_from(client, ATTACKER)
    for _ in range(5):
        await attacker.fails(
            "token", 401, "Invalid email or password", login="alice@example.com", password="nope"
        )
    await attacker.fails(
        "token", 429, TOO_MANY, login="alice@example.com", password="alice-password"
    )
    # REST counts the same: the attacker's address is throttled there too.
    rest = await attempt(client, "alice@example.com", "alice-password", ATTACKER)
    await expect_error(rest, 429, TOO_MANY)

    victim = await socket_from(client, VICTIM)
    pair = await victim.ok("token", login="alice@example.com", password="alice-password")
    assert set(pair) == {"accessToken", "refreshToken"}
