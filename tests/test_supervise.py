"""The one supervised loop: it survives any Exception, logs a failure streak once (with its
traceback) and the recovery once, backs off with a cap, and stops only when cancelled."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from gateway import supervise


async def test_a_failure_streak_is_logged_once_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0
    recovered = asyncio.Event()

    async def step() -> None:
        nonlocal calls
        calls += 1
        if calls <= 5:
            raise KeyError(f"failure {calls}")
        if calls == 8:
            recovered.set()

    with caplog.at_level(logging.INFO, logger="gateway.supervise"):
        task = supervise.spawn("flaky", step, every=0.0, backoff=0.001, backoff_cap=0.004)
        await asyncio.wait_for(recovered.wait(), 5)
        await supervise.stop([task])

    failures = [r for r in caplog.records if "flaky failed" in r.getMessage()]
    assert len(failures) == 1
    assert failures[0].exc_info is not None and "failure 1" in caplog.text
    assert "failure 2" not in caplog.text
    recoveries = [r.getMessage() for r in caplog.records if "recovered" in r.getMessage()]
    assert recoveries == ["flaky recovered after 5 failed attempts"]
    assert task.cancelled()


def test_the_backoff_doubles_up_to_its_cap() -> None:
    delays = supervise.Backoff(0.1, 1.0)
    assert [delays.next() for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    delays.reset()
    assert delays.next() == 0.1


async def test_cancellation_propagates_through_a_running_step() -> None:
    started = asyncio.Event()

    async def step() -> None:
        started.set()
        await asyncio.Event().wait()

    task = supervise.spawn("blocked", step)
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_stop_reports_a_task_that_had_failed(caplog: pytest.LogCaptureFixture) -> None:
    async def broken() -> None:
        raise RuntimeError("it broke")

    task = asyncio.create_task(broken(), name="unsupervised")
    await asyncio.wait([task])
    with caplog.at_level(logging.ERROR, logger="gateway.supervise"):
        await supervise.stop([task])
    assert "background task unsupervised had failed" in caplog.text
    assert "it broke" in caplog.text


async def test_a_step_that_swallows_the_cancellation_still_stops_the_loop() -> None:
    started = asyncio.Event()

    async def step() -> None:
        started.set()
        with contextlib.suppress(asyncio.CancelledError):  # what a racing wait_for can do
            await asyncio.Event().wait()

    task = supervise.spawn("swallowing", step)
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.wait_for(supervise.stop([task]), 5)
    assert task.cancelled()


async def test_stop_still_stops_and_returns_in_a_task_that_was_cancelled_once() -> None:
    """aiohttp runs its clean-up in its main task after cancelling it (SIGTERM): stopping a
    loop there must return, so that the shutdown steps after it (the last write of
    acknowledged messages) still run."""

    async def step() -> None:
        await asyncio.Event().wait()

    async def cleanup_after_cancel() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await supervise.stop([supervise.spawn("late", step)])
            return "the next shutdown step ran"
        return "never cancelled"

    task = asyncio.create_task(cleanup_after_cancel())
    await asyncio.sleep(0)
    task.cancel()
    assert await asyncio.wait_for(task, 5) == "the next shutdown step ran"


async def test_stop_asks_again_a_task_that_swallowed_its_cancellation() -> None:
    """A plain task (not a supervised loop) whose awaited call eats the first cancellation, as
    redis-py can inside SUBSCRIBE or PUBLISH, and then waits for an event that never comes."""
    started = asyncio.Event()

    async def waits_again() -> None:
        started.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
        await asyncio.Event().wait()

    task = asyncio.create_task(waits_again())
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.wait_for(supervise.stop([task]), 5)
    assert task.cancelled()
