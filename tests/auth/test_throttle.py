"""The login throttle: a sliding window of failures per account and per address."""

from __future__ import annotations

import asyncio

from gateway.auth.throttle import LoginThrottle


class Clock:
    """A hand-driven clock, so windows can be crossed without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def throttle(
    per_account: int = 3, per_address: int = 10, window: float = 60.0
) -> tuple[LoginThrottle, Clock]:
    clock = Clock()
    return LoginThrottle(per_account, per_address, window, clock=clock), clock


def test_failures_up_to_the_limit_are_allowed() -> None:
    limiter, _ = throttle()
    for _ in range(2):
        limiter.failed("alice", "10.0.0.1")
    assert limiter.retry_after("alice", "10.0.0.1") is None


def test_the_limit_blocks_until_the_oldest_failure_leaves_the_window() -> None:
    limiter, clock = throttle(window=60.0)
    for _ in range(3):
        limiter.failed("alice", "10.0.0.1")
        clock.now += 5
    assert limiter.retry_after("alice", "10.0.0.1") == 45.0
    clock.now += 44.9
    assert limiter.retry_after("alice", "10.0.0.1") is not None
    clock.now += 0.2
    assert limiter.retry_after("alice", "10.0.0.1") is None


def test_accounts_and_addresses_are_counted_apart() -> None:
    limiter, _ = throttle(per_account=3, per_address=4)
    for _ in range(3):
        limiter.failed("alice", "10.0.0.1")
    assert limiter.retry_after("alice", "10.0.0.2") == 60.0
    assert limiter.retry_after("bob", "10.0.0.1") is None
    limiter.failed("carol", "10.0.0.1")
    assert limiter.retry_after("bob", "10.0.0.1") == 60.0
    assert limiter.retry_after("bob", "10.0.0.2") is None


def test_the_longer_of_the_two_waits_is_reported() -> None:
    limiter, clock = throttle(per_account=2, per_address=2, window=60.0)
    limiter.failed("alice", "10.0.0.9")
    clock.now += 30
    limiter.failed("alice", "10.0.0.1")
    limiter.failed("bob", "10.0.0.1")
    # alice's oldest failure frees in 30 s, the address's in 60 s.
    assert limiter.retry_after("alice", "10.0.0.1") == 60.0


def test_success_clears_the_account_but_not_the_address() -> None:
    limiter, _ = throttle(per_account=3, per_address=3)
    for _ in range(3):
        limiter.failed("alice", "10.0.0.1")
    limiter.succeeded("alice")
    assert limiter.retry_after("alice", "10.0.0.2") is None
    assert limiter.retry_after("alice", "10.0.0.1") == 60.0


async def test_admit_reserves_a_slot_per_check_in_flight() -> None:
    limiter, _ = throttle(per_account=2)
    assert await limiter.admit("alice", "10.0.0.1") is None
    assert await limiter.admit("alice", "10.0.0.1") is None
    third = asyncio.create_task(limiter.admit("alice", "10.0.0.1"))
    await asyncio.sleep(0.01)
    assert not third.done(), "a third check waits while two are in flight"
    # The two in flight fail: the waiting one is now throttled instead of let through.
    limiter.failed("alice", "10.0.0.1")
    limiter.release("alice")
    await asyncio.sleep(0.01)
    assert not third.done(), "one failure and one check in flight still fill the limit"
    limiter.failed("alice", "10.0.0.1")
    limiter.release("alice")
    assert await asyncio.wait_for(third, 1) == 60.0


async def test_a_waiting_check_goes_ahead_when_a_success_clears_the_account() -> None:
    limiter, _ = throttle(per_account=1)
    assert await limiter.admit("alice", "10.0.0.1") is None
    second = asyncio.create_task(limiter.admit("alice", "10.0.0.1"))
    await asyncio.sleep(0.01)
    assert not second.done()
    limiter.release("alice")
    limiter.succeeded("alice")
    assert await asyncio.wait_for(second, 1) is None
    limiter.release("alice")
    assert await limiter.admit("alice", "10.0.0.1") is None


async def test_checks_on_other_accounts_do_not_wait() -> None:
    limiter, _ = throttle(per_account=1)
    assert await limiter.admit("alice", "10.0.0.1") is None
    assert await asyncio.wait_for(limiter.admit("bob", "10.0.0.1"), 1) is None
