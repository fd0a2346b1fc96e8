"""Which channels the other instances listen on, so that a publish goes only where it is wanted.

Redis pub/sub charges the publisher for every PUBLISH whether anybody listens or not, and sends
an instance its own messages back on every channel it listens on too. Most items have no
watcher on another instance: each instance tells the others which channels it starts and stops
listening on, and publishes on a channel only while another instance wants it.

The map is trusted only once it is complete: from start-up and from every reconnect until each
other instance has answered with its whole list, an instance publishes on every channel, as if
everybody listened. An instance that disappears without saying so stays in the map until a
sweep finds nobody listening on its own channel any more: meanwhile what it wanted is still
published, which costs a little and loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson

log = logging.getLogger(__name__)

_CHUNK = 1000
"""Channels per addition message (a reconnect with many subscriptions sends several)."""

ADD = "add"
DROP = "drop"
RESET = "reset"
"""The sender's whole list, replacing what it said before (after it reconnects)."""
HELLO = "hello"
"""Asks every instance for its whole list (an instance that starts or reconnects)."""
LIST = "list"
"""The answer to a hello, sent to the asker alone."""
ACK = "ack"
"""An add or reset was taken: the sender may now count on publishes to reach it."""
BYE = "bye"


def message(op: str, seq: int = 0, channels: Iterable[str] = ()) -> bytes:
    return orjson.dumps({"op": op, "seq": seq, "ch": list(channels)})


def parse(payload: bytes) -> tuple[str, int, list[str]] | None:
    """(op, seq, channels), or None for anything malformed (ignored, never raised)."""
    try:
        fields: Any = orjson.loads(payload)
        op, seq, channels = fields["op"], fields["seq"], fields["ch"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    if not (
        isinstance(op, str)
        and isinstance(seq, int)
        and isinstance(channels, list)
        and all(isinstance(channel, str) for channel in channels)
    ):
        return None
    return op, seq, channels


class Interest:
    """The channels each other instance listens on, as it last said."""

    __slots__ = ("_answered", "_by_channel", "_by_instance", "_expected", "complete")

    def __init__(self) -> None:
        self._by_channel: dict[str, set[str]] = {}
        self._by_instance: dict[str, set[str]] = {}
        self._answered: set[str] = set()
        self._expected: int | None = None
        self.complete = False

    def wanted(self, channel: str) -> bool:
        """Whether another instance may listen on ``channel`` (always, while incomplete)."""
        return not self.complete or channel in self._by_channel

    def listeners(self, channel: str) -> frozenset[str]:
        return frozenset(self._by_channel.get(channel, ()))

    def add(self, instance: str, channels: Iterable[str]) -> None:
        held = self._by_instance.setdefault(instance, set())
        for channel in channels:
            held.add(channel)
            self._by_channel.setdefault(channel, set()).add(instance)

    def drop(self, instance: str, channels: Iterable[str]) -> None:
        held = self._by_instance.get(instance)
        if held is None:
            return
        for channel in channels:
            held.discard(channel)
            listeners = self._by_channel.get(channel)
            if listeners is not None:
                listeners.discard(instance)
                if not listeners:
                    del self._by_channel[channel]
        if not held:
            del self._by_instance[instance]

    def replace(self, instance: str, channels: Iterable[str]) -> None:
        self.forget(instance)
        self.add(instance, channels)

    def instances(self) -> frozenset[str]:
        return frozenset(self._by_instance)

    def forget(self, instance: str) -> None:
        self.drop(instance, list(self._by_instance.get(instance, ())))

    @property
    def unanswered(self) -> int | None:
        """How many asked instances have not answered yet (None before the hello went out)."""
        if self._expected is None:
            return None
        return max(0, self._expected - len(self._answered))

    def begin(self) -> None:
        """Forget everything: incomplete until the answers to a new hello are in."""
        self._by_channel.clear()
        self._by_instance.clear()
        self._answered = set()
        self._expected = None
        self.complete = False

    def expect(self, others: int) -> None:
        """The hello reached ``others`` other instances: complete once each has answered."""
        self._expected = others
        self._check()

    def listed(self, instance: str, channels: Iterable[str]) -> None:
        """An answer to this instance's hello (it may come before ``expect``)."""
        self.replace(instance, channels)
        self._answered.add(instance)
        self._check()

    def _check(self) -> None:
        if self._expected is not None and len(self._answered) >= self._expected:
            self.complete = True


INTEREST_CHANNEL = "interest"


def instance_channel(instance_id: str) -> str:
    return f"instance:{instance_id}"


Publish = Callable[[str, bytes], Awaitable[int]]
"""Publishes on a channel now; returns how many instances (this one included) listen on it."""

Send = Callable[[str, bytes], None]
"""Hands a message for a channel to the publisher, without waiting."""


class Announcer:
    """This instance's side of the protocol, over the bus's transport.

    Everything it publishes goes out one message at a time from the bus's subscription task,
    so that the others receive additions, drops and lists in the order they were made.
    """

    def __init__(
        self,
        publish: Publish,
        send: Send,
        *,
        wake: Callable[[], None],
        progressed: Callable[[], None],
        ack_within: float,
    ) -> None:
        self.interest = Interest()
        self._publish = publish
        self._send = send
        self._wake = wake
        self._progressed = progressed
        self._ack_within = ack_within
        self._told: set[str] = set()
        self._told_seq: dict[str, int] = {}
        self._seq = 0
        self._acked = 0
        self._acks: tuple[int, set[str]] | None = None
        self._ack_arrived = asyncio.Event()
        self._askers: list[str] = []

    def begin(self) -> None:
        """A new connection: the others know nothing of this one, nor this one of them."""
        self._told = set()
        self._told_seq = {}
        self._askers = []
        self.interest.begin()

    def acknowledged(self, channel: str) -> bool:
        """Whether every other instance acknowledged that this one listens on ``channel``."""
        told = self._told_seq.get(channel)
        return told is not None and told <= self._acked

    async def _announce(self, op: str, seq: int = 0, channels: Iterable[str] = ()) -> int:
        """Publishes to every instance; returns how many others got it."""
        return max(0, int(await self._publish(INTEREST_CHANNEL, message(op, seq, channels))) - 1)

    async def hello(self) -> None:
        self.interest.begin()
        self.interest.expect(await self._announce(HELLO))

    async def bye(self) -> None:
        await self._announce(BYE)

    async def tell(self, channels: Iterable[str], *, reset: bool = False) -> None:
        """Tells the others which channels this instance started and stopped listening on. An
        addition counts once each other instance acknowledged it, or after a bound: one that
        does not answer must not stall subscriptions."""
        wanted = set(channels)
        added = sorted(wanted if reset else wanted - self._told)
        dropped = sorted(self._told - wanted)
        if dropped and not reset:
            await self._announce(DROP, 0, dropped)
        for channel in dropped:
            self._told_seq.pop(channel, None)
        chunks = [added[i : i + _CHUNK] for i in range(0, len(added), _CHUNK)]
        for number, chunk in enumerate(chunks or ([[]] if reset else [])):
            self._seq += 1
            seq = self._seq
            acks: set[str] = set()
            self._acks = (seq, acks)
            others = await self._announce(RESET if reset and number == 0 else ADD, seq, chunk)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._ack_within):
                    while len(acks) < others:
                        self._ack_arrived.clear()
                        await self._ack_arrived.wait()
            self._acks = None
            for channel in chunk:
                self._told_seq[channel] = seq
            self._acked = seq
            self._progressed()
        self._told = wanted

    async def answer(self) -> None:
        """Sends this instance's whole list to each instance that said hello."""
        while self._askers:
            asker = self._askers.pop(0)
            await self._publish(instance_channel(asker), message(LIST, 0, sorted(self._told)))

    def heard(self, origin: str, payload: bytes) -> None:
        """A message from another instance."""
        parsed = parse(payload)
        if parsed is None:
            log.warning("dropped a malformed interest message from instance %s", origin)
            return
        op, seq, channels = parsed
        if op in (ADD, RESET):
            if op == RESET:
                self.interest.forget(origin)
            self.interest.add(origin, channels)
            self._send(instance_channel(origin), message(ACK, seq))
        elif op == DROP:
            self.interest.drop(origin, channels)
        elif op == LIST:
            self.interest.listed(origin, channels)
        elif op == HELLO:
            self._askers.append(origin)
            self._wake()
        elif op == ACK:
            if self._acks is not None and self._acks[0] == seq:
                self._acks[1].add(origin)
                self._ack_arrived.set()
        elif op == BYE:
            self.interest.forget(origin)
