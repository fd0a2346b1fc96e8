"""Who listens where: a publish goes to Redis only when another instance wants its channel."""

from __future__ import annotations

import asyncio
import logging

import pytest
import redis.asyncio as aioredis

from gateway.bus.interest import Interest, message, parse
from gateway.bus.redis import RedisBus
from tests.bus.helpers import instances, started
from tests.conftest import AppFactory, wait_for
from tests.realtime.helpers import build_world, connect, insert


async def settled(bus: RedisBus, *channels: str) -> None:
    for channel in channels:
        bus.subscribe(channel)
    await bus.settled(channels)


class Watcher:
    """A plain Redis client on every item channel: it sees what is published, and no instance
    counts it as a listener (it never says so)."""

    def __init__(self, url: str, prefix: str) -> None:
        self.client = aioredis.Redis.from_url(url)
        self.pubsub = self.client.pubsub()
        self.prefix = prefix
        self.seen: list[str] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Watcher:
        await self.pubsub.psubscribe(f"{self.prefix}:dev:*", f"{self.prefix}:net:*")
        for _ in range(2):  # the psubscribe confirmations
            await self.pubsub.get_message(timeout=1.0)
        self._task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        while True:
            found = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if found is not None:
                self.seen.append(found["channel"].decode()[len(self.prefix) + 1 :])

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.pubsub.aclose()  # type: ignore[no-untyped-call]
        await self.client.aclose()


def test_the_map_is_complete_once_every_other_instance_answered() -> None:
    interest = Interest()
    assert interest.wanted("dev:1")
    interest.begin()
    interest.listed("b", ["dev:1"])  # an answer may come before the count of those asked
    assert not interest.complete
    assert interest.unanswered is None
    interest.expect(2)
    assert interest.unanswered == 1
    assert interest.wanted("dev:2")
    interest.listed("c", [])
    assert interest.complete
    assert interest.wanted("dev:1")
    assert not interest.wanted("dev:2")


def test_drops_resets_and_goodbyes_update_who_listens() -> None:
    interest = Interest()
    interest.begin()
    interest.expect(0)
    interest.add("b", ["dev:1", "net:1"])
    interest.add("c", ["dev:1"])
    interest.drop("b", ["dev:1"])
    assert interest.listeners("dev:1") == {"c"}
    interest.replace("c", ["net:2"])
    assert not interest.wanted("dev:1")
    assert interest.wanted("net:1") and interest.wanted("net:2")
    interest.forget("b")
    interest.forget("nobody")
    interest.drop("nobody", ["net:2"])
    assert not interest.wanted("net:1")
    assert interest.listeners("net:2") == {"c"}


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not json",
        b"[]",
        b'{"op": "add"}',
        b'{"op": 1, "seq": 0, "ch": []}',
        b'{"op": "add", "seq": "1", "ch": []}',
        b'{"op": "add", "seq": 1, "ch": [1]}',
        b'{"op": "add", "seq": 1, "ch": "dev:1"}',
        b"\xff\xfe",
    ],
)
def test_a_malformed_message_parses_to_nothing(payload: bytes) -> None:
    assert parse(payload) is None


def test_a_message_round_trips() -> None:
    assert parse(message("add", 7, ["dev:1", "net:2"])) == ("add", 7, ["dev:1", "net:2"])


async def test_a_lone_gateway_on_redis_publishes_no_item(
    make_client: AppFactory, redis_url: str, redis_prefix: str
) -> None:
    """Its own subscriber gets the item in-process; Redis carries nothing."""
    client = await make_client(redis_url=redis_url, redis_prefix=redis_prefix)
    world = await build_world(client)
    async with Watcher(redis_url, redis_prefix) as watcher:
        subscriber = await connect(client, world.alice)
        await subscriber.subscribe(deviceId="d1")
        publisher = await connect(client, world.admin)
        item = await insert(publisher, "d1", "temperature")
        [pushed] = await subscriber.pushes_n(1, timeout=5)
        assert pushed["notification"]["id"] == item["id"]
        await insert(publisher, "d2", "nobody watches")
        await subscriber.no_push(0.2)
        assert watcher.seen == []


async def test_wanted_channels_only(redis_url: str, redis_prefix: str) -> None:
    a = await started(redis_url, "a", redis_prefix)
    try:
        async with Watcher(redis_url, redis_prefix) as watcher:
            await wait_for(lambda: a.interest.complete)
            seen: list[tuple[str, bytes]] = []
            a.set_handler(lambda channel, payload: seen.append((channel, payload)))
            await settled(a, "dev:1")
            assert not a.wants("dev:1")
            assert a.skipped == 1
            b = await started(redis_url, "b", redis_prefix)
            try:
                await settled(b, "dev:1")
                assert a.wants("dev:1") and not a.wants("dev:2")
                assert a.skipped == 2
                a.publish_remote("dev:1", b"to b")
                a.publish("ctl", b"control messages always go")
                await wait_for(lambda: watcher.seen == ["dev:1"])
            finally:
                await b.close()
    finally:
        await a.close()


async def test_what_an_instance_stops_listening_on_is_no_longer_published_to(
    redis_url: str, redis_prefix: str
) -> None:
    async with instances(redis_url, redis_prefix, "a", "b") as (a, b):
        await settled(b, "dev:1", "net:1")
        await wait_for(lambda: a.wants("dev:1") and a.wants("net:1"))
        b.unsubscribe("dev:1")
        await wait_for(lambda: not a.wants("dev:1"))
        assert a.wants("net:1")
        await b.close()
        await wait_for(lambda: not a.wants("net:1"))
        assert a.interest.complete


async def test_a_newcomer_learns_who_listens_and_reaches_them(
    redis_url: str, redis_prefix: str
) -> None:
    async with instances(redis_url, redis_prefix, "a", "b") as (_, b):
        seen: list[tuple[str, bytes]] = []
        b.set_handler(lambda channel, payload: seen.append((channel, payload)))
        await settled(b, "dev:9")
        async with instances(redis_url, redis_prefix, "c") as (c,):
            await wait_for(lambda: c.interest.complete)
            assert c.wants("dev:9") and not c.wants("dev:10")
            c.publish_remote("dev:9", b"from c")
            await wait_for(lambda: seen == [("dev:9", b"from c")])


async def test_an_instance_that_does_not_answer_leaves_everything_published(
    redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A listener on the interest channel that never answers (hung, or not a gateway) keeps
    the map incomplete: publishing everything may waste, never lose."""
    mute = aioredis.Redis.from_url(redis_url)
    pubsub = mute.pubsub()
    await pubsub.subscribe(f"{redis_prefix}:interest")
    caplog.set_level(logging.WARNING, logger="gateway.bus")
    a = await started(redis_url, "a", redis_prefix)
    try:
        await wait_for(lambda: a.interest.unanswered == 1)
        assert not a.interest.complete
        assert a.wants("dev:1")
        await mute.publish(f"{redis_prefix}:interest", b"m\x1e{broken")
        await mute.publish(f"{redis_prefix}:interest", b"no separator")
        # An origin that is not UTF-8 must not take the reader down (a reconnect per message).
        await mute.publish(f"{redis_prefix}:interest", b"\xff\xfe\x1e" + message("hello"))
        await mute.publish(f"{redis_prefix}:interest", b"z\x1e{broken")  # read after it
        await wait_for(lambda: "malformed interest message from instance z" in caplog.text)
        assert a.reconnects == 0 and a.healthy
        assert "Redis bus reader failed" not in caplog.text
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        # Asked again (every 5 s): with the mute listener gone, nobody is left to wait for.
        await wait_for(lambda: a.interest.complete, timeout=10)
        assert not a.wants("dev:1")
    finally:
        await a.close()
        await mute.aclose()


async def test_a_pattern_watcher_is_not_waited_for(redis_url: str, redis_prefix: str) -> None:
    """An operator's ``PSUBSCRIBE <prefix>:*`` receives every interest message but is not an
    instance: neither a subscription nor the map waits for its answer."""
    watcher = aioredis.Redis.from_url(redis_url)
    pubsub = watcher.pubsub()
    await pubsub.psubscribe(f"{redis_prefix}:*")
    try:
        async with instances(redis_url, redis_prefix, "a", "b") as (a, b):
            await wait_for(lambda: a.interest.complete and b.interest.complete)
            began = asyncio.get_running_loop().time()
            await settled(b, "dev:1")
            assert asyncio.get_running_loop().time() - began < 1.0
            assert a.wants("dev:1")
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await watcher.aclose()


async def test_an_instance_gone_without_a_goodbye_is_forgotten(
    redis_url: str, redis_prefix: str
) -> None:
    """Killed or cut off: nobody listens on its own channel any more, and the next sweep stops
    publishing what it wanted."""
    a = RedisBus("a", redis_url, prefix=redis_prefix, sweep_every=0.2)
    await a.start()
    try:
        async with instances(redis_url, redis_prefix, "b") as (b,):
            await settled(b, "dev:1")
            await wait_for(lambda: a.wants("dev:1"))
            b._healthy = False  # closes its connections without the goodbye, as a kill would
        await wait_for(lambda: not a.wants("dev:1"), timeout=5)
        assert "b" not in a.interest.instances()
    finally:
        await a.close()


async def test_a_failure_in_the_subscription_task_is_logged_and_retried(
    redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever fails while subscriptions are brought up to date (here, once, the answer to a
    hello), the task logs it and goes on: it never ends without a word."""
    caplog.set_level(logging.WARNING, logger="gateway.bus")
    async with instances(redis_url, redis_prefix, "a") as (a,):
        answer = a.announcer.answer
        failures = [RuntimeError("a bug in the answer")]

        async def failing_once() -> None:
            if failures:
                raise failures.pop()
            await answer()

        a.announcer.answer = failing_once  # type: ignore[method-assign]
        async with instances(redis_url, redis_prefix, "b") as (b,):
            await settled(a, "dev:7")
            await wait_for(lambda: b.interest.complete and b.wants("dev:7"))
        assert not failures
        assert "updating the Redis subscriptions failed" in caplog.text
        assert "a bug in the answer" in caplog.text
