"""Message ids taken from a PostgreSQL sequence a block at a time, so numbering rarely waits.

Spare blocks are fetched in the background, when half of the current one is used, enough to
last ``RESERVE`` seconds at the rate the last block was used: ``nextval`` on a sequence flushes
the WAL once per 32 calls, so a PostgreSQL whose disk stalls on ``fsync`` (370 ms seen on the
bench's machine) would otherwise stop numbering, and every insert with it, once one block runs
out. A failed fetch is dropped, not kept: the next request for a block asks the database again,
so numbering recovers as soon as PostgreSQL does, without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque

from gateway.store.db import Pool

BLOCK = 1000
"""The sequence's INCREMENT BY."""

BLOCK_TIMEOUT = 5.0
"""Bound on taking blocks: a request waits at most this long on an unreachable database."""

RESERVE = 2.0
"""Seconds of numbering kept in hand, at the rate the last block was used."""

MAX_SPARE = 64
"""Spare blocks at most (64,000 ids: 2 s at 32,000 messages/s); ids held when the process
stops are skipped, which is harmless, but there is no reason to skip millions."""

_TAKE = "SELECT nextval('message_id_blocks') FROM generate_series(1, $1)"


class IdBlocks:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self._next = 0
        self._end = 0
        self._spare: deque[int] = deque()
        self._wanted = 1
        """Spare blocks to keep: ``RESERVE`` seconds at the last block's rate."""
        self._started: float | None = None
        self._refill: asyncio.Task[list[int]] | None = None
        self._taking: asyncio.Task[list[int]] | None = None

    async def _take_blocks(self, count: int) -> list[int]:
        async with asyncio.timeout(BLOCK_TIMEOUT):
            starts = await self.pool.fetch(_TAKE, count)
        return sorted(int(row[0]) for row in starts)

    def _start(self, start: int) -> None:
        now = time.monotonic()
        if self._started is not None:
            per_block = max(now - self._started, 1e-6)
            self._wanted = max(1, min(MAX_SPARE, math.ceil(RESERVE / per_block)))
        self._started = now
        self._next, self._end = start, start + BLOCK

    def take(self) -> int | None:
        """The next id in hand, or None when none is (``next_id`` waits for a block); the hot
        path calls this first and needs no coroutine."""
        value = self._next
        if value >= self._end:
            if not self._spare:
                return None
            self._start(self._spare.popleft())
            value = self._next
        self._next = value + 1
        if (
            self._end - self._next == BLOCK // 2
            and self._refill is None
            and len(self._spare) < self._wanted
        ):
            refill = self._refill = asyncio.create_task(
                self._take_blocks(self._wanted - len(self._spare))
            )
            refill.add_done_callback(self._refilled)
        return value

    def _refilled(self, task: asyncio.Task[list[int]]) -> None:
        """A failed refill is dropped (the next half-used block asks again)."""
        if self._refill is task:
            self._refill = None
        if not task.cancelled() and task.exception() is None:
            self._spare.extend(task.result())

    async def next_id(self) -> int:
        """Returns without touching the database except when no id is in hand."""
        while (value := self.take()) is None:
            await self._new_blocks()
        return value

    async def _take_after(self, refill: asyncio.Task[list[int]] | None) -> list[int]:
        """The refill in flight, or new blocks when there is none or it failed."""
        if refill is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(refill)
                return []  # its blocks are spare now (``_refilled``)
        return await self._take_blocks(self._wanted)

    async def _new_blocks(self) -> None:
        """One block request at a time, shared by every caller that needs it: when it fails,
        they all fail with it (the next caller asks again). Callers queued behind a lock used
        to try again one after another, so with PostgreSQL cut off the n-th waited n timeouts."""
        taking = self._taking
        if taking is None:
            taking = self._taking = asyncio.create_task(self._take_after(self._refill))
            taking.add_done_callback(self._taken)  # runs before any waiter resumes
        await asyncio.shield(taking)

    async def close(self) -> None:
        """Stops the block requests in flight: at shutdown their ids would only be skipped."""
        tasks = [t for t in (self._refill, self._taking) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    def _taken(self, task: asyncio.Task[list[int]]) -> None:
        """Each block is handed out once, whoever wakes first; a failure is dropped here and
        raised to every waiter."""
        if self._taking is task:
            self._taking = None
        if not task.cancelled() and task.exception() is None:
            self._spare.extend(task.result())
