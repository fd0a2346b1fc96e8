"""The outbox's frame encoding: what a WebSocket client reads back, for every length class."""

from __future__ import annotations

import pytest

from gateway.realtime.outbox import text_frames


@pytest.mark.parametrize("length", [0, 1, 125, 126, 65535, 65536, 70000])
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
