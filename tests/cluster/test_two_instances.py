"""Two gateway processes, A and B, on different ports against one PostgreSQL and one Redis:
messages cross instances, and revocations close live sessions wherever they are."""

from __future__ import annotations

import time

import aiohttp
import pytest
import redis.asyncio as aioredis

from tests.cluster.conftest import Cluster
from tests.cluster.helpers import (
    call,
    connect,
    device_token,
    make_world,
    ok,
    token_status,
    user_token,
)
from tests.support.processes import GatewayProcess

pytestmark = pytest.mark.timeout(60)

Pair = tuple[GatewayProcess, GatewayProcess]

REVOKED = 4003

PROMPT = 2.0
"""Bound for what takes milliseconds (about 3 ms on one machine; generous: test machines are
busy)."""


async def test_a_notification_inserted_on_a_reaches_a_subscriber_on_b(
    pair: Pair, http: aiohttp.ClientSession
) -> None:
    a, b = pair
    world = await make_world(http, a)
    device = await connect(http, a, (await device_token(http, a, world))["access_token"], "dev@A")
    watcher = await connect(http, b, world.admin, "watcher@B")
    subscription = await watcher.subscribe(deviceId=world.device_id)

    inserted = await device.ok(
        "notification/insert",
        deviceId=world.device_id,
        notification={"notification": "temperature", "parameters": {"celsius": 21.5}},
    )

    push = await watcher.push("notification/insert")
    assert push["subscriptionId"] == subscription
    assert push["notification"]["id"] == inserted["notification"]["id"]
    assert push["notification"]["deviceId"] == world.device_id
    assert push["notification"]["notification"] == "temperature"
    assert push["notification"]["parameters"] == {"celsius": 21.5}
    await watcher.quiet()  # exactly once


async def test_a_command_sent_on_b_reaches_the_device_on_a_and_its_update_comes_back(
    pair: Pair, http: aiohttp.ClientSession
) -> None:
    a, b = pair
    world = await make_world(http, a)
    device = await connect(http, a, (await device_token(http, a, world))["access_token"], "dev@A")
    await device.subscribe("command", deviceId=world.device_id)
    operator = await connect(http, b, world.admin, "operator@B")
    await operator.subscribe("command", deviceId=world.device_id, returnUpdatedCommands=True)

    sent = await operator.ok(
        "command/insert",
        deviceId=world.device_id,
        command={"command": "set-target", "parameters": {"celsius": 19}},
    )
    command_id = sent["command"]["id"]

    received = await device.push("command/insert")
    assert received["command"]["id"] == command_id
    assert received["command"]["command"] == "set-target"
    assert received["command"]["parameters"] == {"celsius": 19}

    await device.ok(
        "command/update",
        deviceId=world.device_id,
        commandId=command_id,
        command={"status": "done", "result": {"applied": 19}},
    )
    update = await operator.push("command/update")
    assert update["command"]["id"] == command_id
    assert update["command"]["status"] == "done"
    assert update["command"]["result"] == {"applied": 19}


async def test_logout_on_b_closes_the_device_socket_on_a_and_the_token_is_refused_on_both(
    pair: Pair, http: aiohttp.ClientSession
) -> None:
    a, b = pair
    world = await make_world(http, a)
    token = (await device_token(http, a, world))["access_token"]
    device = await connect(http, a, token, "dev@A")
    assert await token_status(http, b, token) == 200

    started = time.monotonic()
    status, _, headers = await call(http, b, "POST", "/v1/auth/logout", token)
    assert status == 204
    assert headers["X-Sessions-Closed"] == "1"
    assert headers["X-Sessions-Closed-By"] == f"{a.instance_id}=1, {b.instance_id}=0"

    assert await device.wait_closed() == REVOKED
    assert device.closed_at is not None
    assert device.closed_at - started < PROMPT, "a revocation should cross in milliseconds"
    assert await token_status(http, a, token) == 401
    assert await token_status(http, b, token) == 401
    # A new socket with the revoked token is refused on either instance.
    for gateway in (a, b):
        peer = await connect(http, gateway, None)
        reply = await peer.request("authenticate", token=token)
        assert (reply["status"], reply["code"], reply["error"]) == ("error", 401, "Token revoked")
        await peer.close()


@pytest.mark.parametrize("how", ["disable", "delete"])
async def test_disabling_or_deleting_a_user_on_b_closes_their_sessions_on_both(
    pair: Pair, http: aiohttp.ClientSession, how: str
) -> None:
    a, b = pair
    world = await make_world(http, a)
    device_jwt = (await device_token(http, a, world))["access_token"]
    user_jwt = await user_token(http, b, world)
    device = await connect(http, a, device_jwt, "dev@A")
    dashboard = await connect(http, b, user_jwt, "dashboard@B")
    bystander = await connect(http, a, world.admin, "admin@A")

    if how == "disable":
        status, body, headers = await call(
            http, b, "PATCH", f"/v1/users/{world.user_id}", world.admin, {"status": "disabled"}
        )
        assert status == 200, body
        assert body["status"] == "disabled"
    else:
        status, body, headers = await call(
            http, b, "DELETE", f"/v1/users/{world.user_id}", world.admin
        )
        assert status == 204, body
    assert headers["X-Sessions-Closed"] == "2"
    assert headers["X-Sessions-Closed-By"] == f"{a.instance_id}=1, {b.instance_id}=1"

    assert await device.wait_closed() == REVOKED
    assert await dashboard.wait_closed() == REVOKED
    for token in (device_jwt, user_jwt):
        assert await token_status(http, a, token) == 401
        assert await token_status(http, b, token) == 401
    # Nobody else was touched.
    assert not bystander.closed.is_set()
    await bystander.ok("server/info")


async def test_the_revoke_response_counts_the_sessions_closed_on_each_instance(
    pair: Pair, http: aiohttp.ClientSession
) -> None:
    a, b = pair
    world = await make_world(http, a)
    on_a = [await connect(http, a, await user_token(http, a, world), f"u{n}@A") for n in range(2)]
    on_b = [await connect(http, b, await user_token(http, b, world), "u@B")]
    admin_socket = await connect(http, b, world.admin, "admin@B")

    body = await ok(http, a, "POST", "/v1/auth/revoke", world.admin, {"user_id": world.user_id})

    assert body == {
        "sessions_closed": 3,
        "instances": [
            {"instance": a.instance_id, "sessions_closed": 2},
            {"instance": b.instance_id, "sessions_closed": 1},
        ],
    }
    for peer in on_a + on_b:
        assert await peer.wait_closed() == REVOKED
    assert not admin_socket.closed.is_set()

    # Nothing left to close: every instance still answers, with zero.
    again = await ok(http, b, "POST", "/v1/auth/revoke", world.admin, {"user_id": world.user_id})
    assert again == {
        "sessions_closed": 0,
        "instances": [
            {"instance": a.instance_id, "sessions_closed": 0},
            {"instance": b.instance_id, "sessions_closed": 0},
        ],
    }


async def test_revoking_one_token_by_jti_closes_its_sessions_on_both_and_no_other(
    pair: Pair, http: aiohttp.ClientSession
) -> None:
    a, b = pair
    world = await make_world(http, a)
    token = await user_token(http, a, world)
    other = await user_token(http, a, world)
    jti = (await ok(http, a, "GET", "/v1/auth/tokenInfo", token))["payload"]["jti"]
    first = await connect(http, a, token, "t@A")
    second = await connect(http, b, token, "t@B")
    untouched = await connect(http, b, other, "other@B")

    body = await ok(http, b, "POST", "/v1/auth/revoke", world.admin, {"jti": jti})

    assert body == {
        "sessions_closed": 2,
        "instances": [
            {"instance": a.instance_id, "sessions_closed": 1},
            {"instance": b.instance_id, "sessions_closed": 1},
        ],
    }
    assert await first.wait_closed() == REVOKED
    assert await second.wait_closed() == REVOKED
    await untouched.ok("server/info")
    assert await token_status(http, a, other) == 200


async def test_a_membership_change_on_a_applies_to_a_live_session_on_b_at_once(
    pair: Pair, http: aiohttp.ClientSession
) -> None:
    a, b = pair
    world = await make_world(http, a)
    admin = world.admin
    second = await ok(http, a, "POST", "/v1/networks", admin, {"name": "annex"}, status=201)
    await ok(
        http,
        a,
        "PUT",
        "/v1/devices/annex-1",
        admin,
        {"name": "annex-1", "networkId": second["id"]},
        status=201,
    )
    dashboard = await connect(http, b, await user_token(http, b, world), "dashboard@B")
    # No filter: every network the user may reach, which follows their memberships.
    subscription = await dashboard.subscribe()
    source = await connect(http, a, admin, "admin@A")
    denied = await dashboard.request("device/get", deviceId="annex-1")
    assert (denied["status"], denied["code"]) == ("error", 403)

    # Joining the second network, on A: B's live session may reach its device at once ...
    membership = f"/v1/users/{world.user_id}/networks/{second['id']}"
    await ok(http, a, "PUT", membership, admin, status=204)
    started = time.monotonic()
    while (await dashboard.request("device/get", deviceId="annex-1"))["status"] != "success":
        assert time.monotonic() - started < PROMPT, "the membership did not reach B"
    # ... and gets its notifications on the subscription it already had.
    await source.ok(
        "notification/insert", deviceId="annex-1", notification={"notification": "joined"}
    )
    push = await dashboard.push("notification/insert")
    assert (push["subscriptionId"], push["notification"]["notification"]) == (
        subscription,
        "joined",
    )

    # Leaving the first network, on A: B stops delivering its notifications at once.
    await ok(
        http,
        a,
        "DELETE",
        f"/v1/users/{world.user_id}/networks/{world.network_id}",
        admin,
        status=204,
    )
    started = time.monotonic()
    while (await dashboard.request("device/get", deviceId=world.device_id))["status"] == "success":
        assert time.monotonic() - started < PROMPT, "the membership change did not reach B"
    await source.ok(
        "notification/insert", deviceId=world.device_id, notification={"notification": "hidden"}
    )
    await source.ok(
        "notification/insert", deviceId="annex-1", notification={"notification": "visible"}
    )
    push = await dashboard.push("notification/insert")
    assert push["notification"]["notification"] == "visible"
    await dashboard.quiet()
    assert not dashboard.closed.is_set()  # a membership change revokes nothing


async def test_a_replay_on_b_includes_what_a_acknowledged_a_moment_before(
    pair: Pair, http: aiohttp.ClientSession
) -> None:
    """A's items reach PostgreSQL within its persist interval; a client reconnecting to B right
    after an insert on A still gets the item, from the replay (it was published before B
    listened)."""
    a, b = pair
    world = await make_world(http, a)
    source = await connect(http, a, world.admin, "source@A")
    since = "2000-01-01T00:00:00.000Z"
    for n in range(3):
        await source.ok(
            "notification/insert", deviceId=world.device_id, notification={"notification": f"n{n}"}
        )
        reconnected = await connect(http, b, world.admin, f"reconnected{n}@B")
        await reconnected.subscribe(deviceId=world.device_id, timestamp=since)
        names = [
            (await reconnected.push("notification/insert"))["notification"]["notification"]
            for _ in range(n + 1)
        ]
        assert names == [f"n{m}" for m in range(n + 1)]
        await reconnected.quiet(0.2)
        await reconnected.close()


async def test_the_receipt_waits_a_bounded_time_and_reports_what_arrived(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    """A third listener on the control channel that never answers (a plain Redis subscriber):
    the origin expects three receipts, waits GATEWAY_REVOKE_WAIT (200 ms, the default) and
    reports the two that came."""
    a, b = await cluster.start("a", "b", extra={"GATEWAY_REVOKE_WAIT": "200ms"})
    world = await make_world(http, a)
    on_b = await connect(http, b, await user_token(http, b, world), "u@B")
    silent = aioredis.Redis.from_url(cluster.redis_url)
    pubsub = silent.pubsub()
    try:
        await pubsub.subscribe(f"{cluster.redis_prefix}:ctl")
        started = time.monotonic()
        body = await ok(http, a, "POST", "/v1/auth/revoke", world.admin, {"user_id": world.user_id})
        took = time.monotonic() - started
        assert body == {
            "sessions_closed": 1,
            "instances": [
                {"instance": a.instance_id, "sessions_closed": 0},
                {"instance": b.instance_id, "sessions_closed": 1},
            ],
        }
        assert 0.2 <= took < PROMPT, f"answered after {took:.3f} s"
        assert await on_b.wait_closed() == REVOKED
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await silent.aclose()
