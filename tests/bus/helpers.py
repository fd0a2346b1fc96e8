"""Buses of several instances on one real Redis, started and closed around a test."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from gateway.bus.redis import RedisBus


async def started(url: str, name: str, prefix: str) -> RedisBus:
    bus = RedisBus(name, url, prefix=prefix)
    await bus.start()
    return bus


@contextlib.asynccontextmanager
async def instances(url: str, prefix: str, *names: str) -> AsyncIterator[list[RedisBus]]:
    """One started bus per name; every one is closed afterwards, also after a failure."""
    buses: list[RedisBus] = []
    try:
        for name in names:
            buses.append(await started(url, name, prefix))
        yield buses
    finally:
        for bus in buses:
            await bus.close()
