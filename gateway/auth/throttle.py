"""Throttling of failed logins per account and per client address (sliding window, in memory).

Each instance counts its own failures; behind a load balancer the effective limit is at most the
per-instance limit times the number of instances.
"""

from __future__ import annotations

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

    def retry_after(self, account: str, address: str) -> float | None:
        waits = [
            wait
            for wait in (self._accounts.retry_after(account), self._addresses.retry_after(address))
            if wait is not None
        ]
        return max(waits) if waits else None

    def failed(self, account: str, address: str) -> None:
        self._accounts.add(account)
        self._addresses.add(address)

    def succeeded(self, account: str) -> None:
        self._accounts.clear(account)
