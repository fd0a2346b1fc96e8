"""Message ids taken from a PostgreSQL sequence a block at a time, so numbering rarely waits.

The next block is fetched in the background when half of the current one is used. A failed
fetch is dropped, not kept: the next request for a block asks the database again, so numbering
recovers as soon as PostgreSQL does, without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib

from gateway.store.db import Pool

BLOCK = 1000
"""The sequence's INCREMENT BY."""

BLOCK_TIMEOUT = 5.0
"""Bound on taking a block: a request waits at most this long on an unreachable database."""


class IdBlocks:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self._next = 0
        self._end = 0
        self._refill: asyncio.Task[int] | None = None
        self._taking: asyncio.Task[int] | None = None
        self._applied: int | None = None

    async def _take_block(self) -> int:
        async with asyncio.timeout(BLOCK_TIMEOUT):
            start: int = await self.pool.fetchval("SELECT nextval('message_id_blocks')")
        return start

    def take(self) -> int | None:
        """The next id of the current block, or None when it is used up (``next_id`` waits
        for a new one); the hot path calls this first and needs no coroutine."""
        value = self._next
        if value >= self._end:
            return None
        self._next = value + 1
        if self._end - self._next == BLOCK // 2 and self._refill is None:
            self._refill = asyncio.create_task(self._take_block())
            self._refill.add_done_callback(_retrieve)
        return value

    async def next_id(self) -> int:
        """Returns without touching the database except once per block."""
        while (value := self.take()) is None:
            await self._new_block()
        return value

    async def _take_after(self, refill: asyncio.Task[int] | None) -> int:
        """The prefetched block, or a new one when there is none or it failed."""
        if refill is not None:
            with contextlib.suppress(Exception):
                return await refill
        return await self._take_block()

    async def _new_block(self) -> None:
        """One block request at a time, shared by every caller that needs it: when it fails,
        they all fail with it (the next caller asks again). Callers queued behind a lock used
        to try again one after another, so with PostgreSQL cut off the n-th waited n timeouts."""
        taking = self._taking
        if taking is None:
            refill, self._refill = self._refill, None
            taking = self._taking = asyncio.create_task(self._take_after(refill))
            taking.add_done_callback(_retrieve)
        try:
            start = await asyncio.shield(taking)
        finally:
            if self._taking is taking and taking.done():
                self._taking = None
        if start != self._applied and self._next >= self._end:
            self._applied = start  # each block is handed out once, whoever wakes first
            self._next, self._end = start, start + BLOCK


def _retrieve(task: asyncio.Task[int]) -> None:
    """A failed block request is dropped (the next request asks again): mark its error seen."""
    if not task.cancelled():
        task.exception()
