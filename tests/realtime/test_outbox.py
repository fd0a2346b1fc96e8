"""The outbox: frame encoding for every length class, and when queued sessions are written."""

from __future__ import annotations

import asyncio

import pytest

from gateway.realtime.outbox import Outbox, text_frames


@pytest.mark.parametrize("length", [0, 1, 125, 126, 4095, 4096, 65535, 65536, 70000])
def test_text_frames_are_unmasked_final_text_frames(length: int) -> None:
    payload = b"x" * length
    frame = text_frames([payload])
    assert frame[0] == 0x81
    if length < 126:
        assert frame[1] == length
        header = 2
    elif length < 65536:
        assert frame[1] == 126
        assert int.from_bytes(frame[2:4], "big") == length
        header = 4
    else:
        assert frame[1] == 127
        assert int.from_bytes(frame[2:10], "big") == length
        header = 10
    assert frame[header:] == payload


def test_several_payloads_become_consecutive_frames() -> None:
    assert text_frames([b"{}", b"[1]"]) == b"\x81\x02{}\x81\x03[1]"
    assert text_frames([]) == b""


class _Recorder:
    """A session as the outbox sees it: something to write at the end of the step."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    def write_queued(self) -> None:
        self.log.append(self.name)


def test_sessions_queued_in_one_step_are_written_once_at_its_end_in_order() -> None:
    outbox = Outbox()
    log: list[str] = []
    a, b = _Recorder("a", log), _Recorder("b", log)

    async def step() -> list[str]:
        outbox.add(a)
        outbox.add(b)
        seen = list(log)
        await asyncio.sleep(0)
        return seen

    assert asyncio.run(step()) == []
    assert log == ["a", "b"]


def test_a_loop_that_stopped_mid_step_leaves_nothing_for_the_next_loop_to_write() -> None:
    outbox = Outbox()
    log: list[str] = []
    stale = asyncio.new_event_loop()
    stale.call_soon(outbox.add, _Recorder("stale", log))
    stale.call_soon(stale.stop)
    stale.run_forever()  # stops before the outbox's end-of-step callback runs
    stale.close()

    async def step() -> None:
        outbox.add(_Recorder("fresh", log))
        await asyncio.sleep(0)

    asyncio.run(step())
    assert log == ["fresh"]
