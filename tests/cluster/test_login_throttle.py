"""Two instances sharing Redis share one login count: spreading guesses over instances buys an
attacker nothing, and the victim still logs in from their own address on either."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.cluster.conftest import Cluster
from tests.support.processes import GatewayProcess

pytestmark = pytest.mark.timeout(60)

ATTACKER, VICTIM = "203.0.113.9", "198.51.100.7"
TOO_MANY = "Too many failed logins; try again later"


async def attempt(
    http: aiohttp.ClientSession, gateway: GatewayProcess, password: str, address: str
) -> tuple[int, Any]:
    """(status, the error message or the token type)."""
    async with http.post(
        gateway.url + "/v1/auth/login",
        json={"email": "admin@example.com", "password": password},
        headers={"X-Forwarded-For": address},
    ) as response:
        body = await response.json()
        return response.status, body.get("message", body.get("token_type"))


async def test_guesses_spread_over_two_instances_are_counted_once(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    a, b = await cluster.start(
        "a",
        "b",
        extra={
            "GATEWAY_TRUSTED_PROXIES": "127.0.0.1/32",
            "GATEWAY_LOGIN_FAILURES_PER_ACCOUNT": "4",
        },
    )
    statuses = [
        (await attempt(http, gateway, "guess-guess", ATTACKER))[0] for gateway in (a, b, a, b)
    ]
    assert statuses == [401] * 4
    for gateway in (a, b):
        assert await attempt(http, gateway, "guess-guess", ATTACKER) == (429, TOO_MANY)
    for gateway in (a, b):
        assert await attempt(http, gateway, "admin-password", VICTIM) == (200, "Bearer")
