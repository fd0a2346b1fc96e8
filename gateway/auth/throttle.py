"""Throttling of failed logins per account and per client address (sliding window, in memory).

Each instance counts its own failures; behind a load balancer the effective limit is at most the
per-instance limit times the number of instances.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Callable

_MAX_KEYS = 100_000


class _Window:
    def __init__(self, limit: int, window: float, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str) -> deque[float] | None:
        stamps = self.failures.get(key)
        if stamps is None:
            return None
        cutoff = self.clock() - self.window
        while stamps and stamps[0] <= cutoff:
            stamps.popleft()
        if not stamps:
            del self.failures[key]
            return None
        return stamps

    def count(self, key: str) -> int:
        stamps = self._recent(key)
        return 0 if stamps is None else len(stamps)

    def retry_after(self, key: str) -> float | None:
        stamps = self._recent(key)
        if stamps is None or len(stamps) < self.limit:
            return None
        return stamps[0] + self.window - self.clock()

    def add(self, key: str) -> None:
        stamps = self._recent(key)
        if stamps is None:
            stamps = self.failures[key] = deque(maxlen=self.limit)
            if len(self.failures) > _MAX_KEYS:
                self.failures.popitem(last=False)
        stamps.append(self.clock())

    def clear(self, key: str) -> None:
        self.failures.pop(key, None)


class LoginThrottle:
    def __init__(
        self,
        per_account: int,
        per_address: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._accounts = _Window(per_account, window, clock)
        self._addresses = _Window(per_address, window, clock)
        self._pending: dict[str, int] = {}
        self._settled: dict[str, asyncio.Event] = {}

    def retry_after(self, account: str, address: str) -> float | None:
        waits = [
            wait
            for wait in (self._accounts.retry_after(account), self._addresses.retry_after(address))
            if wait is not None
        ]
        return max(waits) if waits else None

    async def admit(self, account: str, address: str) -> float | None:
        """Reserve a password check on the account, or return the wait when throttled.

        Checks in flight count as failures until they resolve, so a burst of concurrent guesses
        cannot all pass before the first failure is counted; the surplus queues behind the
        running checks instead of failing, so a burst of right passwords still gets in.
        Every admitted attempt must be followed by ``release``."""
        while True:
            wait = self.retry_after(account, address)
            if wait is not None:
                return wait
            in_flight = self._pending.get(account, 0)
            if self._accounts.count(account) + in_flight < self._accounts.limit:
                self._pending[account] = in_flight + 1
                return None
            await self._settled.setdefault(account, asyncio.Event()).wait()

    def release(self, account: str) -> None:
        left = self._pending.pop(account, 0) - 1
        if left > 0:
            self._pending[account] = left
        settled = self._settled.pop(account, None)
        if settled is not None:
            settled.set()

    def failed(self, account: str, address: str) -> None:
        self._accounts.add(account)
        self._addresses.add(address)

    def succeeded(self, account: str) -> None:
        self._accounts.clear(account)
