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
import logging
import math
import time
from collections import deque

from gateway.store.db import Pool

log = logging.getLogger(__name__)

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
        self._refill: asyncio.Task[None] | None = None
        self._taking: asyncio.Task[None] | None = None

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
            self._refill = asyncio.create_task(self._refill_spare(self._wanted - len(self._spare)))
        return value

    async def _refill_spare(self, count: int) -> None:
        """Spare blocks in the background; a failed refill is dropped (the next half-used
        block asks again, and ``next_id`` raises the database's error to its caller)."""
        try:
            self._spare.extend(await self._take_blocks(count))
        except Exception as exc:  # noqa: BLE001 - dropped, see above
            log.debug("spare id blocks not taken: %r", exc)
        finally:
            self._refill = None

    async def next_id(self) -> int:
        """Returns without touching the database except when no id is in hand."""
        while (value := self.take()) is None:
            await self._new_blocks()
        return value

    async def _new_blocks(self) -> None:
        """One block request at a time, shared by every caller that needs it: when it fails,
        they all fail with it (the next caller asks again). Callers queued behind a lock used
        to try again one after another, so with PostgreSQL cut off the n-th waited n timeouts.

        The request puts its blocks in hand and clears itself before it ends, in its own step,
        so ``_taking`` is never a finished request: awaiting one returns without yielding, and
        a caller that met one (its blocks applied later, by a done callback) looped forever
        with the event loop stopped."""
        taking = self._taking
        if taking is None:
            taking = self._taking = asyncio.create_task(self._take_more())
            taking.add_done_callback(_retrieved)
        await asyncio.shield(taking)

    async def _take_more(self) -> None:
        """The refill in flight, or new blocks when there is none or it brought none."""
        try:
            refill = self._refill
            if refill is not None:
                await asyncio.shield(refill)
                if self._spare:
                    return
            self._spare.extend(await self._take_blocks(self._wanted))
        finally:
            self._taking = None

    async def close(self) -> None:
        """Stops the block requests in flight: at shutdown their ids would only be skipped."""
        tasks = [t for t in (self._refill, self._taking) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)


def _retrieved(task: asyncio.Task[None]) -> None:
    """Marks a failure as seen: its waiters raise it, but they may all have been cancelled."""
    if not task.cancelled():
        task.exception()
