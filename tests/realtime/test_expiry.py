"""Rights never outlive the token: after exp, requests get 401 "Token expired" and pushes stop;
a fresh token within the grace window resumes the session with its subscriptions; without one
the socket is closed with 4002.

Each gateway here runs with access_ttl=1, jwt_leeway=0, ws_expiry_grace=2. Tokens that must
outlive the test are minted with expires_in; the short-lived ones (the world's logins) are
issued just after a whole second (exp is whole seconds), so they live most of a second.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import AppFactory
from tests.realtime.helpers import (
    ALICE_EMAIL,
    PASSWORD,
    Peer,
    World,
    build_world,
    connect,
    insert,
    mint,
    wait_past_second_boundary,
)

SHORT = {"access_ttl": 1, "jwt_leeway": 0, "ws_expiry_grace": 2}


async def _setup(make_client: AppFactory) -> tuple[TestClient[Any, Any], World, Peer]:
    """The world (its logins live < 1 s), with world.admin replaced by a 10-minute token."""
    client = await make_client(**SHORT)
    await wait_past_second_boundary()
    world = await build_world(client)
    world.admin = await mint(client, world.admin, expires_in=600)
    publisher = await connect(client, world.admin)
    return client, world, publisher


async def _until_expired(peer: Peer, timeout: float = 3.0) -> float:
    """Poll until requests are refused as expired; returns when that was seen (monotonic)."""
    deadline = time.monotonic() + timeout
    while True:
        reply = await peer.request("device/get", deviceId="d1")
        if reply["status"] == "error":
            assert reply["code"] == 401 and reply["error"] == "Token expired", reply
            return time.monotonic()
        assert time.monotonic() < deadline, "the token never expired"
        await asyncio.sleep(0.02)


async def test_expired_session_refuses_requests_and_pushes_then_resumes(
    make_client: AppFactory,
) -> None:
    client, world, publisher = await _setup(make_client)
    alice = await connect(client, world.alice)
    sub = await alice.subscribe(deviceId="d1")
    item = await insert(publisher, "d1", "before")
    assert (await alice.push())["notification"]["id"] == item["id"]

    expired_at = await _until_expired(alice)
    for action, fields in (
        ("device/list", {}),
        ("subscription/list", {}),
        ("notification/insert", {"deviceId": "d1", "notification": {"notification": "x"}}),
        ("notification/subscribe", {"deviceId": "d1"}),
        ("command/insert", {"deviceId": "d1", "command": {"command": "x"}}),
        ("notification/unsubscribe", {"subscriptionId": sub}),
    ):
        await alice.fails(action, 401, "Token expired", **fields)
    # server/info still answers; pushes stop.
    assert (await alice.ok("server/info"))["info"]["apiVersion"] == "1"
    await insert(publisher, "d1", "while-expired")
    await alice.no_push()
    # The expired token is refused for re-authentication.
    await alice.fails("authenticate", 401, "Token expired", token=world.alice)

    fresh = await mint(client, world.admin, user_id=world.alice_id, expires_in=600)
    assert await alice.ok("authenticate", token=fresh) == {}
    item = await insert(publisher, "d1", "after")
    push = await alice.push()
    assert (push["subscriptionId"], push["notification"]["id"]) == (sub, item["id"])
    assert (await alice.ok("device/get", deviceId="d1"))["device"]["id"] == "d1"

    # Past the end of the first token's grace window: still open.
    await asyncio.sleep(max(0.0, expired_at + 2.3 - time.monotonic()))
    item = await insert(publisher, "d1", "later")
    push = await alice.push()
    assert (push["subscriptionId"], push["notification"]["id"]) == (sub, item["id"])
    assert await alice.is_open()


async def test_token_refresh_inside_grace_resumes(make_client: AppFactory) -> None:
    client, _world, publisher = await _setup(make_client)
    alice = await connect(client)
    pair = await alice.ok("token", login=ALICE_EMAIL, password=PASSWORD)
    assert await alice.ok("authenticate", token=pair["accessToken"]) == {}
    sub = await alice.subscribe(networkIds=[_world.n1])
    await _until_expired(alice)
    # Right after a whole second (exp is one), so the refreshed 1 s token lives ~1 s.
    refreshed = await alice.ok("token/refresh", refreshToken=pair["refreshToken"])
    assert set(refreshed) == {"accessToken"}
    item = await insert(publisher, "d3", "after-refresh")
    push = await alice.push()
    assert (push["subscriptionId"], push["notification"]["id"]) == (sub, item["id"])


async def test_no_fresh_token_within_grace_closes_4002(make_client: AppFactory) -> None:
    client, world, publisher = await _setup(make_client)
    alice = await connect(client, world.alice)
    await alice.subscribe(deviceId="d1")
    expired_at = await _until_expired(alice)
    await insert(publisher, "d1", "while-expired")
    assert await alice.closed(timeout=4) == (4002, "token expired")
    closed_after = time.monotonic() - expired_at
    assert 1.5 < closed_after < 3.0, closed_after
    assert list(alice.pushes) == []


async def test_bearer_expired_on_upgrade_closes_4002(make_client: AppFactory) -> None:
    client = await make_client(**SHORT)
    await wait_past_second_boundary()
    world = await build_world(client)
    await asyncio.sleep(max(0.0, 1.05 - time.time() % 1.0))  # past world.alice's exp
    peer = await connect(client, world.alice)
    assert await peer.closed() == (4002, "Token expired")
