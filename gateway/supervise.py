"""Every background loop of the gateway: run, catch, log once per failure streak, back off, go on.

A loop that dies silently is a fault nobody sees until the data is wrong, so no loop here may
end on an error: only cancellation (shutdown) stops it. A failure streak is logged once with
its traceback, the recovery once more; the attempts in between only back off (capped), so an
outage of a dependency costs two log lines, not one per try.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

log = logging.getLogger("gateway.supervise")

Step = Callable[[], Awaitable[object]]


class Backoff:
    """Capped exponential delays: ``first``, ``2 first``, ... up to ``cap``."""

    def __init__(self, first: float, cap: float) -> None:
        self.first = first
        self.cap = max(cap, first)
        self.failures = 0

    def next(self) -> float:
        self.failures += 1
        return min(self.cap, self.first * 2.0 ** (self.failures - 1))

    def reset(self) -> None:
        self.failures = 0


class Streak:
    """Logs the first failure of a streak (with its traceback) and the recovery; nothing in
    between."""

    def __init__(self, name: str, logger: logging.Logger = log) -> None:
        self.name = name
        self.log = logger
        self.failures = 0

    def failed(self, exc: BaseException) -> None:
        self.failures += 1
        if self.failures == 1:
            self.log.error(
                "%s failed; retrying with backoff until it succeeds", self.name, exc_info=exc
            )

    def succeeded(self) -> None:
        if self.failures:
            self.log.warning("%s recovered after %d failed attempts", self.name, self.failures)
            self.failures = 0


async def forever(
    name: str,
    step: Step,
    *,
    every: float = 0.0,
    first_delay: float | None = None,
    backoff: float = 0.1,
    backoff_cap: float = 30.0,
    logger: logging.Logger = log,
) -> None:
    """Await ``step()`` again and again, ``every`` seconds apart (after ``first_delay``, by
    default ``every``); after a failure, again after a capped exponential backoff. Returns
    never; cancellation propagates."""
    streak = Streak(name, logger)
    delays = Backoff(backoff, backoff_cap)
    await asyncio.sleep(every if first_delay is None else first_delay)
    current = asyncio.current_task()
    while True:
        if current is not None and current.cancelling():
            # A step swallowed the cancellation (e.g. a racing wait_for on Python 3.11).
            raise asyncio.CancelledError
        try:
            await step()
        except Exception as exc:  # noqa: BLE001 - the point of a supervisor
            streak.failed(exc)
            await asyncio.sleep(delays.next())
            continue
        streak.succeeded()
        delays.reset()
        await asyncio.sleep(every)


def spawn(
    name: str,
    step: Step,
    *,
    every: float = 0.0,
    first_delay: float | None = None,
    backoff: float = 0.1,
    backoff_cap: float = 30.0,
) -> asyncio.Task[None]:
    """``forever(name, step, ...)`` as a task of that name."""
    loop = forever(
        name, step, every=every, first_delay=first_delay, backoff=backoff, backoff_cap=backoff_cap
    )
    return asyncio.create_task(loop, name=name)


async def stop(tasks: Iterable[asyncio.Task[object]]) -> None:
    """Cancel and await ``tasks``; an error one of them ended with is logged, not swallowed.

    A task is asked again until it is done: a library can swallow a cancellation that lands
    mid-call (redis-py does, inside SUBSCRIBE or PUBLISH), and one cancel would then leave the
    task waiting for its next event, and this call with it, forever."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    for task in pending:
        while not task.done():
            await asyncio.wait({task}, timeout=0.25)
            task.cancel()
        if task.cancelled():
            continue
        error = task.exception()
        if error is not None:
            log.error("background task %s had failed", task.get_name(), exc_info=error)
