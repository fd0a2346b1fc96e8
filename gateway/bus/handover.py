"""Flush barriers: wait until every instance has written what it acknowledged before now.

An instance acknowledges a notification or command at once and writes it within its persist
interval. A replay on another instance (or a look-up of a command by id) must read PostgreSQL
only once those items are written, or it would miss them. Instead of sleeping a guessed time,
the reader publishes a barrier request; each instance answers on the reader's reply channel as
soon as none of the items it held pending at that moment is pending any more. The reader waits
for as many answers as Redis counted instances, within a bound.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.bus.control import Control

log = logging.getLogger(__name__)

FLUSH_REQUEST = "flush.request"
FLUSHED = "flushed"

PendingIds = Callable[[], set[int]]
"""The ids of the items this instance acknowledged and has not written yet."""


@dataclass(slots=True)
class _Barrier:
    expected: int = 1
    answered: set[str] = field(default_factory=set)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, instance: str) -> None:
        self.answered.add(instance)
        if len(self.answered) >= self.expected:
            self.done.set()


class Handover:
    def __init__(
        self, control: Control, pending_ids: PendingIds, *, interval: float, wait: float
    ) -> None:
        self.control = control
        self.pending_ids = pending_ids
        self.interval = interval
        """How often this instance's writer runs (how often a barrier here is re-checked)."""
        self.wait = wait
        """The longest a barrier waits for the other instances' answers."""
        self._barriers: dict[str, _Barrier] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        control.on(FLUSH_REQUEST, self._on_request)
        control.on(FLUSHED, self._on_flushed)

    @property
    def shared(self) -> bool:
        return self.control.bus.shared

    async def barrier(self) -> bool:
        """Return once every instance has written what it acknowledged before this call (True),
        or after ``wait`` with some instance silent (False). This instance's own pending items
        are not waited for: readers merge them from memory."""
        if not self.shared:
            return True
        request = uuid.uuid4().hex
        barrier = self._barriers[request] = _Barrier()
        try:
            expected = await self.control.publish_counted(FLUSH_REQUEST, request=request)
            barrier.expected = max(expected, 1)
            if len(barrier.answered) < barrier.expected:
                barrier.done.clear()
                try:
                    await asyncio.wait_for(barrier.done.wait(), self.wait)
                except TimeoutError:
                    log.info(
                        "flush barrier: %d of %d instances answered within %.1f s",
                        len(barrier.answered),
                        barrier.expected,
                        self.wait,
                    )
                    return False
            return True
        finally:
            del self._barriers[request]

    def _on_request(self, event: dict[str, Any]) -> None:
        origin = str(event["origin"])
        request = str(event["request"])
        snapshot = set() if origin == self.control.instance_id else self.pending_ids()
        if not snapshot:
            self.control.reply(origin, FLUSHED, request=request)
            return
        task = asyncio.create_task(self._answer_when_written(origin, request, snapshot))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer_when_written(self, origin: str, request: str, snapshot: set[int]) -> None:
        """Answer once none of ``snapshot`` is pending; silent when that takes longer than the
        asker waits (its barrier then reports this instance missing)."""
        deadline = time.monotonic() + self.wait
        step = max(0.002, self.interval / 2)
        while snapshot & self.pending_ids():
            if time.monotonic() >= deadline:
                return
            await asyncio.sleep(step)
        self.control.reply(origin, FLUSHED, request=request)

    def _on_flushed(self, event: dict[str, Any]) -> None:
        barrier = self._barriers.get(str(event.get("request", "")))
        if barrier is not None:
            barrier.add(str(event["origin"]))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1)
