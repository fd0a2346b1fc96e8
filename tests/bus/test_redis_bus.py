"""The Redis bus against a real redis-server: delivery between instances, no echo, recovery."""

from __future__ import annotations

import asyncio
import functools

import pytest

from gateway.bus.redis import RedisBus
from tests.bus.helpers import instances, started
from tests.conftest import wait_for
from tests.support.servers import RedisProcess


def collector(bus: RedisBus) -> list[tuple[str, bytes]]:
    seen: list[tuple[str, bytes]] = []
    bus.set_handler(lambda channel, payload: seen.append((channel, payload)))
    return seen


async def test_a_message_reaches_the_other_instance_once_and_the_publisher_locally(
    redis_url: str, redis_prefix: str
) -> None:
    async with instances(redis_url, redis_prefix, "a", "b") as (a, b):
        seen_a, seen_b = collector(a), collector(b)
        a.subscribe("dev:1")
        b.subscribe("dev:1")
        await a.settled(["dev:1"])
        await b.settled(["dev:1"])
        a.publish("dev:1", b"hello")
        await wait_for(lambda: len(seen_b) == 1)
        await asyncio.sleep(0.1)
        assert seen_a == [("dev:1", b"hello")]
        assert seen_b == [("dev:1", b"hello")]


async def test_publish_counted_reports_every_subscribed_instance(
    redis_url: str, redis_prefix: str
) -> None:
    buses = [await started(redis_url, f"i{n}", redis_prefix) for n in range(3)]
    try:
        for bus in buses:
            collector(bus)
            bus.subscribe("ctl")
        for bus in buses:
            await bus.settled(["ctl"])
        assert await buses[0].publish_counted("ctl", b"x") == 3
    finally:
        for bus in buses:
            await bus.close()


async def test_unsubscribed_channels_are_not_delivered(redis_url: str, redis_prefix: str) -> None:
    a = await started(redis_url, "a", redis_prefix)
    b = await started(redis_url, "b", redis_prefix)
    try:
        seen_b = collector(b)
        b.subscribe("dev:2")
        await wait_for(lambda: "dev:2" in b._subscribed_remote)
        b.unsubscribe("dev:2")
        await wait_for(lambda: "dev:2" not in b._subscribed_remote)
        a.publish("dev:2", b"ignored")
        await asyncio.sleep(0.2)
        assert seen_b == []
    finally:
        await a.close()
        await b.close()


@pytest.mark.timeout(60)
async def test_after_redis_restarts_the_bus_resubscribes_and_runs_its_resync_hooks(
    redis_prefix: str,
) -> None:
    server = RedisProcess()
    server.start()
    a = await started(server.url, "a", redis_prefix)
    b = await started(server.url, "b", redis_prefix)
    resyncs: list[str] = []

    async def hook() -> None:
        resyncs.append("b")

    b.on_resync(hook)
    try:
        seen_b = collector(b)
        b.subscribe("dev:3")
        await b.settled(["dev:3"])
        server.stop()
        await wait_for(lambda: not b.healthy, timeout=10)
        a.publish("dev:3", b"lost while down")
        server.start()
        await wait_for(lambda: b.healthy and a.healthy, timeout=20)
        assert b.prefix + "dev:3" in b._live
        assert resyncs == ["b"]
        a.publish("dev:3", b"after")
        await wait_for(lambda: seen_b == [("dev:3", b"after")], timeout=5)
    finally:
        await a.close()
        await b.close()
        server.stop()


async def test_a_settled_subscription_is_live_for_the_next_publish_of_another_instance(
    redis_url: str, redis_prefix: str
) -> None:
    """SUBSCRIBE is only sent when subscribe() returns; settled() waits for Redis to confirm
    it, so what another instance publishes next reaches this one (no lost first message)."""
    a = await started(redis_url, "a", redis_prefix)
    b = await started(redis_url, "b", redis_prefix)
    try:
        seen_b = collector(b)
        for n in range(20):
            b.subscribe(f"dev:s{n}")
            await b.settled([f"dev:s{n}"])
            assert await a.publish_counted(f"dev:s{n}", b"first") == 1
        await wait_for(lambda: len(seen_b) == 20)
    finally:
        await a.close()
        await b.close()


def _subscribed_to(bus: RedisBus, channel: str) -> bool:
    return channel in bus._subscribed_remote


@pytest.mark.parametrize("publish", [False, True])
async def test_close_right_after_subscribing_or_publishing_returns(
    redis_url: str, redis_prefix: str, publish: bool
) -> None:
    """A cancellation landing inside a redis-py command (SUBSCRIBE, PUBLISH) was swallowed, and
    close() waited forever (a short-lived admin command hit this on most runs)."""
    for attempt in range(8):
        bus = await started(redis_url, f"short-{attempt}", redis_prefix)
        bus.subscribe("ctl:revoke")
        if publish:
            await wait_for(functools.partial(_subscribed_to, bus, "ctl:revoke"))
            bus.publish("ctl:membership", b"{}")
            # Not a synchronisation: the scenario is a close landing while PUBLISH is in
            # flight, a few milliseconds after it was handed over.
            await asyncio.sleep(0.002 + attempt * 0.0005)
        await asyncio.wait_for(bus.close(), 5)
