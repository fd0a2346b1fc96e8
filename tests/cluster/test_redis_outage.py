"""Redis stopped and restarted under two live gateways (a redis-server the test owns, never the
machine's shared one): readiness says so, local fan-out goes on, no revocation is lost, stored
notifications replay, and cross-instance delivery comes back."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import aiohttp
import pytest

from tests.cluster.conftest import Cluster
from tests.cluster.helpers import (
    call,
    connect,
    device_token,
    eventually,
    make_world,
    ok,
    token_status,
    user_token,
)
from tests.support.processes import GatewayProcess
from tests.support.servers import RedisProcess

pytestmark = pytest.mark.timeout(90)

RECONCILE_INTERVAL = 1.0
REVOKED = 4003
PROMPT = 2.0
"""Bound for what takes milliseconds (generous: test machines are busy)."""


def after_millisecond(timestamp: str) -> str:
    moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00")) + timedelta(milliseconds=1)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


async def bus_is(http: aiohttp.ClientSession, gateway: GatewayProcess, up: bool) -> bool:
    status, body = await gateway.readyz(http)
    expected = (200, True) if up else (503, False)
    if (status, body["bus"]) != expected:
        return False
    assert body == {"database": True, "bus": up, "instance": gateway.instance_id}
    return True


async def test_a_redis_outage_loses_no_revocation_and_delivery_comes_back(
    cluster: Cluster, own_redis: RedisProcess, http: aiohttp.ClientSession
) -> None:
    a, b = await cluster.start("a", "b", redis_url=own_redis.url, reconcile_interval="1s")
    world = await make_world(http, a)
    device = await connect(http, a, (await device_token(http, a, world))["access_token"], "dev@A")
    watch_a = await connect(http, a, world.admin, "watcher@A")
    watch_b = await connect(http, b, world.admin, "watcher@B")
    for watcher in (watch_a, watch_b):
        await watcher.subscribe(deviceId=world.device_id)
    victim_token = await user_token(http, b, world)
    victim = await connect(http, b, victim_token, "victim@B")

    before = await device.ok(
        "notification/insert", deviceId=world.device_id, notification={"notification": "before"}
    )
    for watcher in (watch_a, watch_b):
        assert (await watcher.push("notification/insert"))["notification"]["notification"] == (
            "before"
        )
    # Just after "before" (whatever the precision a timestamp is stored with): replay from here.
    since = after_millisecond(before["notification"]["timestamp"])

    # -- Redis goes away ------------------------------------------------------------------
    own_redis.stop()
    await eventually(lambda: bus_is(http, a, up=False), timeout=10)
    await eventually(lambda: bus_is(http, b, up=False), timeout=10)

    # Live sessions keep working on each instance's local fan-out.
    await device.ok(
        "notification/insert", deviceId=world.device_id, notification={"notification": "down-1"}
    )
    assert (await watch_a.push("notification/insert"))["notification"]["notification"] == "down-1"
    await watch_b.ok(
        "notification/insert", deviceId=world.device_id, notification={"notification": "down-2"}
    )
    assert (await watch_b.push("notification/insert"))["notification"]["notification"] == "down-2"

    # A revocation issued on A while the bus is down: A answers for itself, promptly ...
    started = time.monotonic()
    receipt = await ok(http, a, "POST", "/v1/auth/revoke", world.admin, {"user_id": world.user_id})
    answered = time.monotonic() - started
    assert receipt == {
        "sessions_closed": 1,  # the device's socket on A
        "instances": [{"instance": a.instance_id, "sessions_closed": 1}],
    }
    assert answered < PROMPT, f"the revoking request took {answered:.2f} s with Redis down"
    assert await device.wait_closed() == REVOKED
    # ... and B, which never heard of it on the bus, applies it from PostgreSQL within the
    # reconciliation interval: the socket closes with the revoked code and the token is refused.
    assert await victim.wait_closed(timeout=RECONCILE_INTERVAL + 2.0) == REVOKED
    assert victim.closed_at is not None
    assert victim.closed_at - started <= RECONCILE_INTERVAL + 1.0
    assert await token_status(http, b, victim_token) == 401
    assert await token_status(http, a, victim_token) == 401
    # What was published on A while Redis was down never reached B (at-most-once).
    await watch_b.quiet()

    # -- Redis comes back -----------------------------------------------------------------
    own_redis.start()
    await eventually(lambda: bus_is(http, a, up=True), timeout=15)
    await eventually(lambda: bus_is(http, b, up=True), timeout=15)

    # What was published while Redis was down was stored: a subscriber (re)connecting with
    # `timestamp` gets it, on either instance.
    late = await connect(http, b, world.admin, "late@B")
    subscription = await late.subscribe(deviceId=world.device_id, timestamp=since)
    pushes = [await late.push("notification/insert") for _ in range(2)]
    assert [push["subscriptionId"] for push in pushes] == [subscription] * 2
    assert [push["notification"]["notification"] for push in pushes] == ["down-1", "down-2"]
    await late.quiet()

    # Cross-instance delivery works again, on the subscriptions made before the outage.
    await watch_a.ok(
        "notification/insert", deviceId=world.device_id, notification={"notification": "after"}
    )
    for watcher in (watch_b, watch_a, late):
        assert (await watcher.push("notification/insert"))["notification"]["notification"] == (
            "after"
        )
    assert await token_status(http, b, victim_token) == 401


async def test_a_revocation_lost_on_the_bus_is_applied_when_redis_returns(
    cluster: Cluster, own_redis: RedisProcess, http: aiohttp.ClientSession
) -> None:
    """With a reconciliation interval far longer than the test, only the reload that follows
    the reconnect can bring the revocation to B: it does, before B reports ready again."""
    a, b = await cluster.start("a", "b", redis_url=own_redis.url, reconcile_interval="10m")
    world = await make_world(http, a)
    victim_token = await user_token(http, b, world)
    victim = await connect(http, b, victim_token, "victim@B")

    own_redis.stop()
    await eventually(lambda: bus_is(http, a, up=False), timeout=10)
    await eventually(lambda: bus_is(http, b, up=False), timeout=10)
    status, body, _ = await call(
        http, a, "POST", "/v1/auth/revoke", world.admin, {"user_id": world.user_id}
    )
    assert (status, body["sessions_closed"]) == (200, 0), body
    assert await token_status(http, a, victim_token) == 401
    # B cannot know yet: its view is as stale as the bus outage (the documented bound).
    assert await token_status(http, b, victim_token) == 200
    assert not victim.closed.is_set()

    own_redis.start()
    # B closes the session as part of its resynchronization, before it reports ready.
    assert await victim.wait_closed(timeout=15) == REVOKED
    await eventually(lambda: bus_is(http, b, up=True), timeout=15)
    assert await token_status(http, b, victim_token) == 401


async def test_a_membership_ended_while_redis_was_down_applies_on_b_when_it_returns(
    cluster: Cluster, own_redis: RedisProcess, http: aiohttp.ClientSession
) -> None:
    """The membership event is lost with the bus; B reloads its caches from PostgreSQL on the
    reconnect, so the user stops getting the network's messages there (no stale access)."""
    a, b = await cluster.start("a", "b", redis_url=own_redis.url)
    world = await make_world(http, a)
    dashboard = await connect(http, b, await user_token(http, b, world), "dashboard@B")
    await dashboard.subscribe()  # every network the user may reach
    source = await connect(http, a, world.admin, "admin@A")
    await source.ok(
        "notification/insert", deviceId=world.device_id, notification={"notification": "seen"}
    )
    assert (await dashboard.push("notification/insert"))["notification"]["notification"] == "seen"

    own_redis.stop()
    await eventually(lambda: bus_is(http, a, up=False), timeout=10)
    await eventually(lambda: bus_is(http, b, up=False), timeout=10)
    await ok(
        http,
        a,
        "DELETE",
        f"/v1/users/{world.user_id}/networks/{world.network_id}",
        world.admin,
        status=204,
    )
    own_redis.start()
    await eventually(lambda: bus_is(http, a, up=True), timeout=15)
    await eventually(lambda: bus_is(http, b, up=True), timeout=15)

    denied = await dashboard.request("device/get", deviceId=world.device_id)
    assert (denied["status"], denied.get("code")) == ("error", 403), denied
    await source.ok(
        "notification/insert", deviceId=world.device_id, notification={"notification": "hidden"}
    )
    await dashboard.quiet()
