"""The cluster bus on Redis pub/sub (redis-py's ``redis.asyncio``).

One connection carries every subscription of this instance, whatever the number of sessions;
another carries publishes, pipelined in batches. Each message is tagged with its origin so an
instance ignores the echo of its own messages, which it already delivered locally, before it
decodes anything. A message is published only on a channel another instance listens on
(``gateway.bus.interest``): a lone instance publishes nothing.

Redis pub/sub is at-most-once: what is published while a connection is down is lost. After a
reconnect the instance re-subscribes and waits for Redis to confirm every subscription before it
reports itself connected (a SUBSCRIBE only sent is not in effect: what another instance publishes
before Redis processes it would be lost), then runs the resync hooks (the
revocation view and the registry reload from PostgreSQL) in a task of their own, reporting
healthy when they are done: a PostgreSQL outage at that moment delays the reload (retried with
backoff) and readiness, never cross-instance fan-out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway import supervise
from gateway.bus.base import Bus
from gateway.bus.interest import INTEREST_CHANNEL, Announcer, instance_channel
from gateway.config import redact
from gateway.supervise import Backoff, Streak, stop

log = logging.getLogger(__name__)

_SEPARATOR = b"\x1e"
_MAX_OUTBOX = 100_000
_BACKOFF_START = 0.1
_BACKOFF_MAX = 5.0
_PING_EVERY = 5.0
_CONFIRM_WITHIN = 5.0
_SETTLE_WITHIN = 2.0
_HELLO_AGAIN = 5.0
_SWEEP_EVERY = 30.0


class RedisBus(Bus):
    shared = True

    def __init__(
        self,
        instance_id: str,
        url: str,
        *,
        prefix: str = "gateway",
        sweep_every: float = _SWEEP_EVERY,
    ) -> None:
        super().__init__(instance_id)
        self.sweep_every = sweep_every
        """How often instances that vanished without a goodbye are looked for."""
        self.url = url
        self.prefix = prefix + ":"
        self._origin = instance_id.encode()
        self._tag = self._origin + _SEPARATOR
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_keepalive=True, socket_connect_timeout=2, socket_timeout=5
        )
        self._pubsub: Any = None
        self._healthy = False
        self._failure: str | None = None  # why the last attempt to connect failed
        self._outbox: deque[tuple[str, bytes]] = deque()
        self._outbox_ready = asyncio.Event()
        self._changes = asyncio.Event()
        self._subscribed_remote: set[str] = set()
        self._live: set[str] = set()
        """Channels (prefixed) whose subscription Redis has confirmed on the current connection."""
        self._live_changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._dropped = 0
        self._connected = asyncio.Event()
        self._resync_wanted = asyncio.Event()
        self._resyncing = False
        self.announcer = Announcer(
            self._publish_now,
            self.publish_remote,
            wake=self._changes.set,
            progressed=self._live_changed.set,
            ack_within=_SETTLE_WITHIN,
        )
        self.interest = self.announcer.interest
        self._interest_channel = self.prefix + INTEREST_CHANNEL
        self._own_channel = self.prefix + instance_channel(instance_id)

    @property
    def healthy(self) -> bool:
        """Connected and resynchronized (messages flow as soon as it is connected)."""
        return self._healthy and not self._resyncing

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._read_forever(), name="redis-bus-reader"),
            supervise.spawn("redis-bus-publisher", self._publish_some, backoff_cap=1.0),
            asyncio.create_task(self._resync_forever(), name="redis-bus-resync"),
        ]
        # Start-up waits briefly for Redis; an instance may still start while it is down.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), 5)
        if not self._healthy:
            log.warning(  # with its cause: "unreachable" alone sends operators to the network
                "Redis at %s is unreachable (%s); running on local fan-out, retrying",
                *(redact(self.url), self._failure or "no answer"),
            )

    async def close(self) -> None:
        if self._healthy:
            # Or the others keep publishing what this instance wanted (harmless, wasted).
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await self.announcer.bye()
        await stop(self._tasks)
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()
        await self._client.aclose()

    # -- publishing ------------------------------------------------------------------------

    def publish(self, channel: str, payload: bytes) -> int:
        self._deliver(channel, payload)
        self.publish_remote(channel, payload)
        return 1

    async def _publish_now(self, channel: str, payload: bytes) -> int:
        """Publishes at once; returns how many subscribers the channel has by name. Not the
        PUBLISH reply, which also counts pattern subscribers: an operator watching
        ``<prefix>:*`` would be waited for as an instance that never answers."""
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.publish(self.prefix + channel, self._tag + payload)
            pipe.pubsub_numsub(self.prefix + channel)
            _, [(_, subscribers)] = await pipe.execute()
        return int(subscribers)

    def wants(self, channel: str) -> bool:
        """Counts each no (``gateway_bus_skipped_total``): the caller leaves that publish out."""
        if self.interest.wanted(channel):
            return True
        self.skipped += 1
        return False

    def publish_remote(self, channel: str, payload: bytes) -> None:
        if len(self._outbox) >= _MAX_OUTBOX:
            self._dropped += 1
            return
        self._outbox.append((channel, payload))
        self._outbox_ready.set()

    async def publish_counted(self, channel: str, payload: bytes) -> int:
        self._deliver(channel, payload)
        try:
            receivers = await self._client.publish(self.prefix + channel, self._tag + payload)
        except (RedisError, OSError) as exc:
            log.warning("publish on %s failed (Redis unreachable?): %s", channel, exc)
            return 1
        return max(1, int(receivers))

    async def _publish_some(self) -> None:
        """Waits for something to publish, then publishes what the outbox holds."""
        await self._outbox_ready.wait()
        self._outbox_ready.clear()
        while self._outbox:
            batch = [self._outbox.popleft() for _ in range(min(len(self._outbox), 512))]
            try:
                async with self._client.pipeline(transaction=False) as pipe:
                    for channel, payload in batch:
                        pipe.publish(self.prefix + channel, self._tag + payload)
                    await pipe.execute()
            except (RedisError, OSError) as exc:
                self._dropped += len(batch)
                if self._healthy:
                    log.warning("publishing to Redis failed; messages lost: %s", exc)
                await asyncio.sleep(0.05)
        if self._dropped:
            log.warning("%d messages were not published to Redis (at-most-once)", self._dropped)
            self._dropped = 0

    # -- subscribing -----------------------------------------------------------------------

    def _subscribed(self, channel: str) -> None:
        self._changes.set()

    def _unsubscribed(self, channel: str) -> None:
        self._changes.set()

    async def settled(self, channels: Iterable[str]) -> None:
        """Waits (bounded; not while Redis is down) for Redis to confirm ``channels`` and for
        the other instances to acknowledge that this one listens on them: a subscribe reply
        then means what another instance publishes next reaches it."""
        wanted = [channel for channel in channels if channel in self._channels]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_SETTLE_WITHIN):
                while self._healthy and not all(self._settled(c) for c in wanted):
                    self._live_changed.clear()
                    await self._live_changed.wait()
                    wanted = [channel for channel in wanted if channel in self._channels]

    def _settled(self, channel: str) -> bool:
        return self.prefix + channel in self._live and self.announcer.acknowledged(channel)

    async def _sync_subscriptions(self) -> None:
        """Bring the Redis subscriptions in line with what local subscribers need, in batches."""
        pubsub = self._pubsub
        if pubsub is None:
            return
        wanted = self._channels
        add = [self.prefix + c for c in wanted - self._subscribed_remote]
        drop = [self.prefix + c for c in self._subscribed_remote - wanted]
        for start in range(0, len(add), 1000):
            await pubsub.subscribe(*add[start : start + 1000])
        # Not live from now on, whatever confirmation of an earlier SUBSCRIBE is still in transit.
        self._live.difference_update(drop)
        for start in range(0, len(drop), 1000):
            await pubsub.unsubscribe(*drop[start : start + 1000])
        self._subscribed_remote = set(wanted)

    async def _sync_forever(self) -> None:
        """Keeps the Redis subscriptions and what the others were told in line with the local
        subscribers; asks the others for their lists again every few seconds until every one
        has answered (one may be hung, or gone)."""
        announcer = self.announcer
        loop = asyncio.get_running_loop()
        streak = Streak("updating the Redis subscriptions", log)
        delays = Backoff(_BACKOFF_START, _BACKOFF_MAX)
        told = False
        hello_due = 0.0
        sweep_due = loop.time() + self.sweep_every
        while True:
            try:
                if not told:
                    await announcer.tell(self._channels, reset=True)
                    told = True
                if not self.interest.complete and loop.time() >= hello_due:
                    await announcer.hello()
                    hello_due = loop.time() + _HELLO_AGAIN
                if loop.time() >= sweep_due:
                    await self._sweep()
                    sweep_due = loop.time() + self.sweep_every
                streak.succeeded()
                delays.reset()
                due = sweep_due if self.interest.complete else min(sweep_due, hello_due)
                wait = max(0.0, due - loop.time())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._changes.wait()
                if not self._changes.is_set():
                    continue
                self._changes.clear()
                await self._sync_subscriptions()
                await announcer.tell(self._channels)
                await announcer.answer()
            except Exception as exc:  # noqa: BLE001 - logged once per streak, retried
                # The reader reconnects when the connection is gone; a failed publish alone
                # (or a bug) is retried here, never left to end the task without a word.
                streak.failed(exc)
                self._changes.set()
                await asyncio.sleep(delays.next())

    async def _sweep(self) -> None:
        """Forgets the instances nobody listens for any more (gone without a goodbye: killed,
        or cut off): their own channel has no subscriber."""
        known = sorted(self.interest.instances())
        if not known:
            return
        channels = [self.prefix + instance_channel(instance) for instance in known]
        counts = await self._client.pubsub_numsub(*channels)
        for instance, (_, listeners) in zip(known, counts, strict=True):
            if not int(listeners):
                log.info("instance %s left without a goodbye: forgotten", instance)
                self.interest.forget(instance)

    async def _connect(self) -> None:
        # Confirmations are read, not ignored: they say when a subscription is in effect.
        self._pubsub = self._client.pubsub()
        self._subscribed_remote = set()
        self._live = set()
        self.announcer.begin()
        own = (self._own_channel, self._interest_channel)
        # A channel of our own keeps the connection open even before anything else is wanted.
        await self._pubsub.subscribe(*own)
        await self._sync_subscriptions()
        sent = {*own} | {self.prefix + c for c in self._subscribed_remote}
        async with asyncio.timeout(_CONFIRM_WITHIN):
            while not sent <= self._live:
                self._handle(await self._pubsub.get_message(timeout=1.0))

    async def _read_forever(self) -> None:
        backoff = _BACKOFF_START
        first = True
        while True:
            syncer: asyncio.Task[None] | None = None
            try:
                await self._connect()
                if not first:
                    # Idle publishing connections still point at the Redis that went away; the
                    # first publish on one would fail ("connection closed by server") and its
                    # messages would be lost although the bus reports healthy again.
                    with contextlib.suppress(RedisError, OSError):
                        await self._client.connection_pool.disconnect(inuse_connections=False)
                    # Not here: a hook waiting on PostgreSQL must not keep fan-out down.
                    self.reconnects += 1
                    self._resyncing = True
                    self._resync_wanted.set()
                    log.info("Redis bus reconnected; resynchronizing")
                first = False
                self._healthy = True
                self._connected.set()
                backoff = _BACKOFF_START
                syncer = asyncio.create_task(self._sync_forever())
                await self._read(self._pubsub)
            except (TimeoutError, RedisError, OSError) as exc:
                cause, self._failure = self._failure, f"{type(exc).__name__}: {exc}"
                if self._healthy or cause not in (None, self._failure):  # lost, or a new cause
                    log.warning("Redis bus not connected: %s; retrying", self._failure)
            except Exception:
                log.exception("Redis bus reader failed; reconnecting")
            finally:
                self._healthy = False
                self._live_changed.set()
                if syncer is not None:
                    await stop([syncer])
                if self._pubsub is not None:
                    with contextlib.suppress(RedisError, OSError, RuntimeError):
                        await self._pubsub.aclose()
                    self._pubsub = None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX)

    async def _resync_forever(self) -> None:
        """Runs the resync hooks after each reconnect, apart from the reader; a hook that fails
        (PostgreSQL down too) is retried with a capped backoff until it succeeds."""
        streak = Streak("resynchronizing after a Redis reconnect", log)
        delays = Backoff(_BACKOFF_START, _BACKOFF_MAX)
        while True:
            await self._resync_wanted.wait()
            self._resync_wanted.clear()
            hooks = list(self._resync_hooks)
            while hooks:
                failed = []
                for hook in hooks:
                    try:
                        await hook()
                    except Exception as exc:  # noqa: BLE001 - retried below, logged once
                        streak.failed(exc)
                        failed.append(hook)
                hooks = failed
                if hooks:
                    await asyncio.sleep(delays.next())
            streak.succeeded()
            delays.reset()
            if not self._resync_wanted.is_set():
                self._resyncing = False
                log.info("Redis bus resynchronized")

    async def _read(self, pubsub: Any) -> None:
        idle = 0.0
        while True:
            message = await pubsub.get_message(timeout=1.0)
            if message is None:
                idle += 1.0
                if idle >= _PING_EVERY:
                    idle = 0.0
                    await pubsub.ping()
                continue
            idle = 0.0
            self._handle(message)

    def _handle(self, message: dict[str, Any] | None) -> None:
        """Delivers another instance's message; notes subscribe confirmations."""
        if message is None:
            return
        kind = message.get("type")
        if kind == "message":
            origin, separator, payload = message["data"].partition(_SEPARATOR)
            if not separator or origin == self._origin:
                return
            channel = message["channel"].decode()
            if channel == self._interest_channel or channel == self._own_channel:
                self.announcer.heard(origin.decode(errors="replace"), payload)
            else:
                self._deliver(channel[len(self.prefix) :], payload)
            return
        raw = message.get("channel") or b""
        channel = raw.decode() if isinstance(raw, bytes) else str(raw)
        if kind == "subscribe":
            self._live.add(channel)
            self._live_changed.set()
        elif kind == "unsubscribe":
            self._live.discard(channel)
