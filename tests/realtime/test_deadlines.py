"""One ticker for every session's deadline: each fires once, at its time, and can be replaced."""

from __future__ import annotations

import asyncio

import pytest

from gateway.realtime.deadlines import Deadlines


async def test_a_deadline_fires_once_after_its_delay() -> None:
    deadlines: Deadlines[str] = Deadlines(resolution=0.01)
    fired: list[tuple[str, float]] = []
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadlines.set("a", 0.05, lambda owner: fired.append((owner, loop.time() - start)))
    await asyncio.sleep(0.15)
    assert [owner for owner, _ in fired] == ["a"]
    assert 0.05 <= fired[0][1] < 0.1
    assert len(deadlines) == 0


async def test_setting_again_replaces_and_cancel_removes() -> None:
    deadlines: Deadlines[str] = Deadlines(resolution=0.01)
    fired: list[str] = []
    deadlines.set("a", 0.02, lambda owner: fired.append("first"))
    deadlines.set("a", 0.04, lambda owner: fired.append("second"))
    deadlines.set("b", 0.02, lambda owner: fired.append("b"))
    deadlines.cancel("b")
    await asyncio.sleep(0.1)
    assert fired == ["second"]


async def test_an_action_may_set_the_owner_s_next_deadline() -> None:
    deadlines: Deadlines[str] = Deadlines(resolution=0.01)
    fired: list[str] = []

    def expire(owner: str) -> None:
        fired.append("expired")
        deadlines.set(owner, 0.02, lambda _: fired.append("closed"))

    deadlines.set("s", 0.01, expire)
    await asyncio.sleep(0.1)
    assert fired == ["expired", "closed"]
    deadlines.close()


async def test_an_owner_cancelled_by_an_earlier_action_of_its_tick_does_not_fire() -> None:
    """A session closed by another's deadline action (one tick runs both) keeps no stale one."""
    deadlines: Deadlines[str] = Deadlines(resolution=0.01)
    fired: list[str] = []
    ticked = asyncio.Event()

    def first(owner: str) -> None:
        fired.append(owner)
        deadlines.cancel("b")
        ticked.set()

    deadlines.set("a", 0.02, first)
    deadlines.set("b", 0.02, fired.append)
    await asyncio.wait_for(ticked.wait(), 1)
    assert fired == ["a"]
    assert len(deadlines) == 0


async def test_a_failing_action_neither_stops_the_others_nor_the_ticker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    deadlines: Deadlines[str] = Deadlines(resolution=0.01)
    fired: list[str] = []
    later = asyncio.Event()

    def broken(owner: str) -> None:
        raise RuntimeError("broken action")

    deadlines.set("a", 0.02, broken)
    deadlines.set("b", 0.02, fired.append)
    deadlines.set("c", 0.06, lambda owner: later.set())
    await asyncio.wait_for(later.wait(), 5)
    assert fired == ["b"]
    assert "deadline action for 'a' failed" in caplog.text


async def test_a_due_deadline_fires_on_time_among_thousands_of_later_ones() -> None:
    """A tick looks at what is due, not at every bucket: tokens that expire hours apart leave
    thousands of them."""
    deadlines: Deadlines[int] = Deadlines(resolution=0.01)
    fired = asyncio.Event()
    for owner in range(5_000):
        deadlines.set(owner, 60.0 + owner, lambda owner: None)
    deadlines.set(-1, 0.02, lambda owner: fired.set())
    await asyncio.wait_for(fired.wait(), 1)
    assert len(deadlines) == 5_000
    deadlines.close()


async def test_a_deadline_set_and_cancelled_over_and_over_leaves_bounded_state() -> None:
    """A client can make its session's deadline move as often as it likes (a pong each time):
    what is kept for ticks whose buckets were emptied stays in proportion to the live ones."""
    deadlines: Deadlines[str] = Deadlines(resolution=0.01)
    for step in range(10_000):
        deadlines.set("a", 1.0 + step * 0.01, lambda owner: None)
    deadlines.set("b", 0.5, lambda owner: None)
    assert len(deadlines) == 2
    assert len(deadlines._due) <= 2 * 2 + 64
    deadlines.close()


async def test_an_action_that_sets_a_deadline_for_now_waits_for_the_next_tick() -> None:
    """An action that re-arms itself with no delay runs once per tick, never in a loop that
    keeps the tick from returning."""
    deadlines: Deadlines[str] = Deadlines(resolution=0.01)
    runs: list[float] = []
    loop = asyncio.get_running_loop()
    three = asyncio.Event()

    def again(owner: str) -> None:
        runs.append(loop.time())
        if len(runs) == 3:
            three.set()
        else:
            deadlines.set(owner, 0.0, again)

    deadlines.set("a", 0.0, again)
    await asyncio.wait_for(three.wait(), 1)
    assert len(runs) == 3
    assert runs[1] > runs[0] and runs[2] > runs[1]
    deadlines.close()
