"""The login throttle: attempts counted per (account, address) and per address, reserved before
the password check, in process or shared through Redis."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from gateway.auth.throttle import TOO_MANY, LoginThrottle, Outcome
from gateway.bus.counts import MemoryCounts, RedisCounts
from gateway.errors import TooManyRequests


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
    return LoginThrottle(per_account, per_address, window, local=MemoryCounts(clock)), clock


async def fail(limiter: LoginThrottle, account: str, address: str, times: int = 1) -> None:
    for _ in range(times):
        await limiter.settle(await limiter.admit(account, address), Outcome.FAILED)


async def refused(limiter: LoginThrottle, account: str, address: str) -> float:
    with pytest.raises(TooManyRequests) as caught:
        await limiter.admit(account, address)
    assert caught.value.message == TOO_MANY
    return caught.value.retry_after


async def test_failures_up_to_the_limit_are_allowed_then_refused_until_the_window_ends() -> None:
    limiter, clock = throttle(per_account=3, window=60.0)
    await fail(limiter, "alice", "10.0.0.1", 2)
    clock.now += 5
    await fail(limiter, "alice", "10.0.0.1")
    assert await refused(limiter, "alice", "10.0.0.1") == 55.0
    clock.now += 54.9
    await refused(limiter, "alice", "10.0.0.1")
    clock.now += 0.2
    await fail(limiter, "alice", "10.0.0.1")


async def test_a_strangers_failures_never_refuse_the_account_from_another_address() -> None:
    limiter, _ = throttle(per_account=3, per_address=100)
    await fail(limiter, "alice", "203.0.113.9", 3)
    for _ in range(50):
        await refused(limiter, "alice", "203.0.113.9")
    ticket = await limiter.admit("alice", "10.0.0.1")
    await limiter.settle(ticket, Outcome.SUCCEEDED)


async def test_the_address_limit_covers_every_account_from_that_address() -> None:
    limiter, _ = throttle(per_account=100, per_address=4)
    for index in range(4):
        await fail(limiter, f"user{index}", "10.0.0.1")
    assert await refused(limiter, "bob", "10.0.0.1") == 60.0
    await limiter.settle(await limiter.admit("bob", "10.0.0.2"), Outcome.SUCCEEDED)


async def test_a_success_forgives_the_pair_but_not_the_address() -> None:
    limiter, _ = throttle(per_account=3, per_address=5)
    await fail(limiter, "alice", "10.0.0.1", 2)
    await limiter.settle(await limiter.admit("alice", "10.0.0.1"), Outcome.SUCCEEDED)
    # Unforgiven, the third of these would be refused.
    await fail(limiter, "alice", "10.0.0.1", 3)
    # The address has five failures in its window: it is refused for any account.
    await refused(limiter, "bob", "10.0.0.1")


async def test_a_void_check_is_uncounted() -> None:
    limiter, _ = throttle(per_account=1, per_address=1)
    for _ in range(3):
        await limiter.settle(await limiter.admit("alice", "10.0.0.1"), Outcome.VOID)
    await fail(limiter, "alice", "10.0.0.1")
    await refused(limiter, "alice", "10.0.0.1")


async def test_checks_in_flight_fill_the_limit_and_the_surplus_waits() -> None:
    limiter, _ = throttle(per_account=2)
    first = await limiter.admit("alice", "10.0.0.1")
    second = await limiter.admit("alice", "10.0.0.1")
    third = asyncio.create_task(limiter.admit("alice", "10.0.0.1"))
    await asyncio.sleep(0.01)
    assert not third.done(), "a third check waits while two are in flight"
    await limiter.settle(first, Outcome.FAILED)
    await asyncio.sleep(0.01)
    assert not third.done(), "one failure and one check in flight still fill the limit"
    await limiter.settle(second, Outcome.FAILED)
    with pytest.raises(TooManyRequests):
        await asyncio.wait_for(third, 1)


async def test_a_waiting_check_goes_ahead_when_a_check_in_flight_succeeds() -> None:
    limiter, _ = throttle(per_account=1)
    first = await limiter.admit("alice", "10.0.0.1")
    second = asyncio.create_task(limiter.admit("alice", "10.0.0.1"))
    await asyncio.sleep(0.01)
    assert not second.done()
    await limiter.settle(first, Outcome.SUCCEEDED)
    ticket = await asyncio.wait_for(second, 1)
    await limiter.settle(ticket, Outcome.SUCCEEDED)


async def test_checks_on_other_accounts_do_not_wait() -> None:
    limiter, _ = throttle(per_account=1)
    await limiter.admit("alice", "10.0.0.1")
    await asyncio.wait_for(limiter.admit("bob", "10.0.0.1"), 1)


async def test_with_redis_two_instances_share_one_count(redis_url: str) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    counts = [RedisCounts(redis_url, prefix) for _ in range(2)]
    try:
        one, two = (LoginThrottle(3, 100, 60.0, shared=shared) for shared in counts)
        await fail(one, "alice", "10.0.0.1", 2)
        await fail(two, "alice", "10.0.0.1")
        for limiter in (one, two):
            wait = await refused(limiter, "alice", "10.0.0.1")
            assert 59.0 < wait <= 60.0
        # The victim, elsewhere, is let in by either instance.
        await two.settle(await two.admit("alice", "10.0.0.2"), Outcome.SUCCEEDED)
        await one.settle(await one.admit("alice", "10.0.0.2"), Outcome.SUCCEEDED)
    finally:
        for shared in counts:
            await shared.close()


async def test_with_redis_unreachable_each_instance_counts_for_itself() -> None:
    shared = RedisCounts("redis://127.0.0.1:1/0", "test")
    try:
        limiter = LoginThrottle(2, 100, 60.0, shared=shared)
        await fail(limiter, "alice", "10.0.0.1", 2)
        await refused(limiter, "alice", "10.0.0.1")
    finally:
        await shared.close()


async def test_an_ipv6_client_is_counted_by_its_slash_64() -> None:
    """One subscriber holds a whole /64: counted per address, each of its addresses would
    start afresh. An IPv4-mapped address is its IPv4 address."""
    limiter, _ = throttle(per_account=3, per_address=100)
    await fail(limiter, "alice", "2001:db8:1:2::1")
    await fail(limiter, "alice", "2001:db8:1:2:ffff::9")
    await fail(limiter, "alice", "2001:DB8:1:2::abcd")
    await refused(limiter, "alice", "2001:db8:1:2:dead:beef:0:1")
    await fail(limiter, "alice", "2001:db8:1:3::1")
    await fail(limiter, "bob", "::ffff:192.0.2.7", 3)
    await refused(limiter, "bob", "192.0.2.7")
    await fail(limiter, "carol", "not-an-address")
