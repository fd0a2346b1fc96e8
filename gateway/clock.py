"""Timestamps as the wire carries them: UTC ISO-8601 with milliseconds."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def iso(epoch: float) -> str:
    """``2026-11-22T04:32:11.123Z``: the form DeviceHive clients read and send back."""
    whole = int(epoch)
    millis = round((epoch - whole) * 1000)
    if millis == 1000:
        whole, millis = whole + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


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
