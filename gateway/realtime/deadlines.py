"""Deadlines for many sessions on one ticker, instead of a loop timer each.

Every session has at most one deadline at a time (authentication, then token expiry, then the end
of the grace window). Keeping them in coarse buckets costs a set slot per session where a loop
``TimerHandle`` costs about half a kilobyte, which matters at tens of thousands of idle sockets.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)


class _Bucket(dict[T, Callable[[T], None]]):
    """The owners due in one tick, and that tick (one number per bucket, not per owner)."""

    __slots__ = ("key",)

    def __init__(self, key: int) -> None:
        super().__init__()
        self.key = key


class Deadlines(Generic[T]):
    def __init__(self, resolution: float = 0.05) -> None:
        self.resolution = resolution
        self._buckets: dict[int, _Bucket[T]] = {}
        self._due: list[int] = []
        """The buckets' ticks, earliest first (a heap; a bucket emptied by ``cancel`` leaves its
        tick behind until it comes): a tick finds what is due without scanning every bucket,
        of which tokens hours apart leave thousands."""
        self._key_of: dict[T, _Bucket[T]] = {}
        self._ticker: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._key_of)

    def set(self, owner: T, delay: float, action: Callable[[T], None]) -> None:
        """Run ``action(owner)`` once, ``delay`` seconds from now (replacing any earlier one)."""
        self.cancel(owner)
        loop = asyncio.get_running_loop()
        key = math.ceil((loop.time() + max(0.0, delay)) / self.resolution)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(key)
            due = self._due
            heapq.heappush(due, key)
            if len(due) > 2 * len(self._buckets) + 64:  # mostly ticks of emptied buckets
                due[:] = self._buckets
                heapq.heapify(due)
        bucket[owner] = action
        self._key_of[owner] = bucket
        if self._ticker is None:
            self._ticker = loop.call_later(self.resolution, self._tick)

    def cancel(self, owner: T) -> None:
        bucket = self._key_of.pop(owner, None)
        if bucket is not None:
            bucket.pop(owner, None)
            if not bucket and self._buckets.get(bucket.key) is bucket:
                del self._buckets[bucket.key]

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        now = math.floor(loop.time() / self.resolution)
        due = self._due
        keys = []  # a deadline an action sets for now waits for the next tick
        while due and due[0] <= now:
            keys.append(heapq.heappop(due))
        for key in keys:
            bucket = self._buckets.pop(key, None)
            if bucket is not None:
                for owner, action in list(bucket.items()):
                    if owner not in bucket:
                        continue  # cancelled (or given a new deadline) by an action of this tick
                    if self._key_of.get(owner) is bucket:
                        del self._key_of[owner]
                    try:
                        action(owner)
                    except Exception:
                        # One failing action must not stop the ticker for every other session.
                        log.exception("deadline action for %r failed", owner)
        if self._buckets:
            self._ticker = loop.call_later(self.resolution, self._tick)
        else:
            self._ticker = None
            due.clear()

    def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        self._buckets.clear()
        self._due.clear()
        self._key_of.clear()
