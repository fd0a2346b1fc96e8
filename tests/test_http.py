"""Behind a trusted proxy the failed-login limit counts each real client, not the proxy; an
untrusted peer cannot choose the address it is counted under."""

from __future__ import annotations

import ipaddress
from typing import Any

from aiohttp.test_utils import make_mocked_request

from gateway.http import client_address
from tests.conftest import AppFactory, create_user, login

LOCAL = (ipaddress.ip_network("127.0.0.0/8"),)


async def _fail(client: Any, email: str, forwarded: str) -> int:
    response = await client.post(
        "/v1/auth/login",
        json={"email": email, "password": "wrong-password"},
        headers={"X-Forwarded-For": forwarded},
    )
    return int(response.status)


async def test_a_trusted_proxy_s_clients_are_throttled_each_on_its_own(
    make_client: AppFactory,
) -> None:
    client = await make_client(
        trusted_proxies=LOCAL, login_failures_per_address=2, login_failures_per_account=100
    )
    assert [await _fail(client, f"u{i}@example.com", "203.0.113.5") for i in range(3)] == [
        401,
        401,
        429,
    ]
    assert await _fail(client, "other@example.com", "203.0.113.6") == 401


async def test_without_trusted_proxies_the_header_is_ignored(make_client: AppFactory) -> None:
    client = await make_client(login_failures_per_address=2, login_failures_per_account=100)
    assert await _fail(client, "a@example.com", "203.0.113.5") == 401
    assert await _fail(client, "b@example.com", "203.0.113.6") == 401
    assert await _fail(client, "c@example.com", "203.0.113.7") == 429


async def test_a_right_password_still_logs_in_behind_the_proxy(make_client: AppFactory) -> None:
    client = await make_client(trusted_proxies=LOCAL)
    admin = await login(client, "admin@example.com", "admin-password")
    headers = {"Authorization": f"Bearer {admin['access_token']}"}
    await create_user(client, headers, email="ada@example.com")
    assert (await login(client, "ada@example.com", "client-password"))["user_id"] == 2


def _request(peer: str, forwarded: str | None) -> Any:
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    request = make_mocked_request("GET", "/", headers=headers)
    request._transport_peername = (peer, 5555)  # the peer a real socket would report
    return request


def test_the_rightmost_untrusted_hop_is_the_client() -> None:
    proxies = (ipaddress.ip_network("10.0.0.0/8"),)
    spoofed = _request("10.0.0.2", "1.2.3.4, 198.51.100.7, 10.0.0.9")
    assert client_address(spoofed, proxies) == "198.51.100.7"


def test_an_untrusted_peer_is_the_client_whatever_it_forwards() -> None:
    proxies = (ipaddress.ip_network("10.0.0.0/8"),)
    assert client_address(_request("198.51.100.7", "1.2.3.4"), proxies) == "198.51.100.7"


def test_a_trusted_peer_without_the_header_is_the_client() -> None:
    proxies = (ipaddress.ip_network("10.0.0.0/8"),)
    assert client_address(_request("10.0.0.2", None), proxies) == "10.0.0.2"
