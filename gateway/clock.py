"""Timestamps as the wire carries them: UTC ISO-8601 with milliseconds."""

from __future__ import annotations

import time
from datetime import UTC, datetime

_MILLIS = tuple(f".{n:03d}Z" for n in range(1000))
_second: tuple[int, str] = (0, "1970-01-01T00:00:00")
"""The last whole second formatted: consecutive items share it (a tuple, swapped whole)."""
_last: tuple[float, str] = (0.0, "1970-01-01T00:00:00.000Z")
"""The last epoch formatted: an item's push and its acknowledgement share it."""


def iso(epoch: float) -> str:
    """``2026-11-22T04:32:11.123Z``: the form DeviceHive clients read and send back.

    Truncated to the millisecond, never rounded up: a subscribe ``timestamp`` replays items
    strictly newer than it, so a time rounded up could name a moment after an item stored
    within the same half millisecond, and the replay would skip that item. (Microseconds are
    rounded first only to absorb float noise: ``.678`` parsed back must stay ``.678``.)

    On the hot path (twice per message): the date and time of day are formatted once per
    second, the milliseconds come from a table.
    """
    global _second, _last
    last = _last
    if epoch == last[0]:
        return last[1]
    whole, micros = divmod(round(epoch * 1_000_000), 1_000_000)
    second = _second
    if whole != second[0]:
        second = _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    text = second[1] + _MILLIS[micros // 1000]
    _last = (epoch, text)
    return text


def parse_iso(text: str) -> float:
    """Accepts what ``iso`` emits and the usual ISO-8601 variants (no zone means UTC)."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
