"""argon2id hashing off the event loop, and the dummy hash that hides unknown users."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator

import pytest

from gateway.auth.passwords import Passwords


@pytest.fixture
async def passwords() -> AsyncIterator[Passwords]:
    hasher = Passwords(time_cost=1, memory_kib=64, parallelism=1, workers=2)
    yield hasher
    hasher.close()


async def test_hashes_are_argon2id_with_the_configured_cost(passwords: Passwords) -> None:
    encoded = await passwords.hash("correct horse")
    assert encoded.startswith("$argon2id$v=19$m=64,t=1,p=1$")
    assert "correct horse" not in encoded
    assert await passwords.hash("correct horse") != encoded, "every hash has its own salt"


async def test_verify(passwords: Passwords) -> None:
    encoded = await passwords.hash("correct horse")
    assert await passwords.verify(encoded, "correct horse") is True
    assert await passwords.verify(encoded, "wrong horse") is False
    assert await passwords.verify(encoded, "") is False


async def test_a_missing_or_corrupt_hash_never_verifies(passwords: Passwords) -> None:
    assert await passwords.verify(None, "anything") is False
    assert await passwords.verify("not-a-hash", "anything") is False
    assert await passwords.verify("$argon2id$v=19$m=64,t=1,p=1$garbage", "anything") is False


async def test_hashing_runs_off_the_event_loop() -> None:
    """While a costly hash runs, the loop keeps serving other coroutines."""
    hasher = Passwords(time_cost=3, memory_kib=32 * 1024, parallelism=1, workers=1)
    try:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.001)
                ticks += 1

        task = asyncio.create_task(ticker())
        started = time.perf_counter()
        await hasher.hash("correct horse")
        elapsed = time.perf_counter() - started
        task.cancel()
        assert elapsed > 0.02, "the hash must cost something for this test to mean anything"
        assert ticks >= 5
    finally:
        hasher.close()


async def test_an_unknown_user_costs_a_full_verification() -> None:
    """Wrong password and unknown user take the same time: the missing hash is replaced by a
    dummy one of the same cost, so timing does not reveal which accounts exist."""
    hasher = Passwords(time_cost=2, memory_kib=16 * 1024, parallelism=1, workers=1)
    try:
        real = await hasher.hash("correct horse")

        async def timed(encoded: str | None) -> float:
            started = time.perf_counter()
            assert await hasher.verify(encoded, "wrong horse") is False
            return time.perf_counter() - started

        known = statistics.median([await timed(real) for _ in range(5)])
        unknown = statistics.median([await timed(None) for _ in range(5)])
        assert 0.4 < unknown / known < 2.5, (known, unknown)
    finally:
        hasher.close()
