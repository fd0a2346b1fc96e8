"""Attempt counters with a fixed window, in process or shared by every instance through Redis.

A reservation checks two counters (an account at an address, and the address) against their
limits and, if both are under, counts the attempt in both: one atomic step, so concurrent
attempts cannot all pass before the first is counted. In Redis that step is one Lua script,
one round trip.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import redis.asyncio as aioredis

_MAX_KEYS = 100_000


class Counts(Protocol):
    async def reserve(
        self, pair: str, address: str, pair_limit: int, address_limit: int, window: float
    ) -> float | None:
        """Count one attempt in both counters; or, when either is at its limit, count nothing
        and return the seconds until it resets."""

    async def release(self, pair: str, address: str, *, forgive: bool) -> None:
        """Uncount a reserved attempt; ``forgive`` also clears the pair's earlier failures."""


class MemoryCounts:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._counts: OrderedDict[str, list[float]] = OrderedDict()

    def _live(self, key: str) -> list[float] | None:
        entry = self._counts.get(key)
        if entry is not None and entry[1] <= self.clock():
            del self._counts[key]
            return None
        return entry

    def count(self, key: str) -> int:
        entry = self._live(key)
        return 0 if entry is None else int(entry[0])

    async def reserve(
        self, pair: str, address: str, pair_limit: int, address_limit: int, window: float
    ) -> float | None:
        now = self.clock()
        waits = [
            entry[1] - now
            for key, limit in ((pair, pair_limit), (address, address_limit))
            if (entry := self._live(key)) is not None and entry[0] >= limit
        ]
        if waits:
            return max(waits)
        for key in (pair, address):
            entry = self._live(key)
            if entry is None:
                self._counts[key] = [1, now + window]
                if len(self._counts) > _MAX_KEYS:
                    self._counts.popitem(last=False)
            else:
                entry[0] += 1
        return None

    async def release(self, pair: str, address: str, *, forgive: bool) -> None:
        if forgive:
            self._counts.pop(pair, None)
        for key in (address,) if forgive else (pair, address):
            entry = self._live(key)
            if entry is not None and entry[0] > 0:
                entry[0] -= 1


_RESERVE = """
local pair = tonumber(redis.call('GET', KEYS[1]) or '0')
local addr = tonumber(redis.call('GET', KEYS[2]) or '0')
local wait = -1
if pair >= tonumber(ARGV[1]) then wait = math.max(wait, redis.call('PTTL', KEYS[1]), 1) end
if addr >= tonumber(ARGV[2]) then wait = math.max(wait, redis.call('PTTL', KEYS[2]), 1) end
if wait > 0 then return wait end
if redis.call('INCR', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
if redis.call('INCR', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
return 0
"""

_RELEASE = """
if ARGV[1] == '1' then redis.call('DEL', KEYS[1])
elseif tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then redis.call('DECR', KEYS[1]) end
if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then redis.call('DECR', KEYS[2]) end
return 0
"""


class RedisCounts:
    """Counts shared by every instance on the same Redis: N instances give no more guesses
    than one."""

    def __init__(self, url: str, prefix: str) -> None:
        self.prefix = prefix + ":login:"
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_connect_timeout=1, socket_timeout=1
        )
        self._reserve = self._client.register_script(_RESERVE)
        self._release = self._client.register_script(_RELEASE)

    async def reserve(
        self, pair: str, address: str, pair_limit: int, address_limit: int, window: float
    ) -> float | None:
        wait = await self._reserve(
            keys=[self.prefix + pair, self.prefix + address],
            args=[pair_limit, address_limit, max(1, int(window * 1000))],
        )
        return None if int(wait) <= 0 else int(wait) / 1000

    async def release(self, pair: str, address: str, *, forgive: bool) -> None:
        await self._release(
            keys=[self.prefix + pair, self.prefix + address], args=["1" if forgive else "0"]
        )

    async def close(self) -> None:
        await self._client.aclose()
