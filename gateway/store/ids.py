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
        self._lock = asyncio.Lock()

    async def _take_block(self) -> int:
        async with asyncio.timeout(BLOCK_TIMEOUT):
            start: int = await self.pool.fetchval("SELECT nextval('message_id_blocks')")
        return start

    async def next_id(self) -> int:
        """Returns without touching the database except once per block."""
        if self._next >= self._end:
            await self._new_block()
        value = self._next
        self._next += 1
        if self._end - self._next == BLOCK // 2 and self._refill is None:
            self._refill = asyncio.create_task(self._take_block())
            self._refill.add_done_callback(_retrieve)
        return value

    async def _new_block(self) -> None:
        async with self._lock:
            if self._next < self._end:
                return  # another caller took one while this one waited
            refill, self._refill = self._refill, None
            start = None
            if refill is not None:
                with contextlib.suppress(Exception):
                    start = await refill
            if start is None:
                start = await self._take_block()
            self._next, self._end = start, start + BLOCK


def _retrieve(task: asyncio.Task[int]) -> None:
    """A failed prefetch is dropped (the next block request asks again): mark its error seen."""
    if not task.cancelled():
        task.exception()
