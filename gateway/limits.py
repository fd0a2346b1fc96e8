"""What the store and the encoder can hold, checked at the edges before anything is acknowledged.

orjson reads JSON nested up to 1024 levels but writes only 254, PostgreSQL's ``integer`` holds
32 bits and Python's datetime years 1-9999: an acknowledged item outside these bounds could be
neither written nor replayed, so every WebSocket message and REST body is held to them first.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from gateway.clock import parse_iso
from gateway.errors import BadRequest, Unprocessable

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects in a WebSocket message or a REST body, the envelope
included. A stored value is wrapped in at most a few more levels when pushed, far below the 254
that orjson can write."""

INT32_MAX = 2**31 - 1
"""PostgreSQL ``integer`` (a command's ``lifetime``)."""

EARLIEST = 0.0
"""1970-01-01T00:00:00Z: the earliest timestamp a notification or command may carry."""

MAX_FUTURE = 86_400.0
"""A notification or command may be dated at most one day ahead of the server's clock (device
clocks drift; a later date would outlive retention and sort after every live item)."""

_FIRST_YEAR_1 = -62_135_596_800.0  # 0001-01-01T00:00:00Z
_LAST_YEAR_9999 = 253_402_300_799.0  # 9999-12-31T23:59:59Z

DEPTH_MESSAGE = f"JSON nests deeper than {MAX_JSON_DEPTH} levels"


def _too_deep(value: Any, limit: int) -> bool:
    """Whether arrays/objects nest more than ``limit`` levels (iterative: no recursion limit)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            pending.extend((child, depth + 1) for child in item.values() if _nests(child))
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item if _nests(child))
    return False


def _nests(value: Any) -> bool:
    return isinstance(value, dict | list)


def loads(raw: str | bytes) -> Any:
    """Parse JSON no deeper than MAX_JSON_DEPTH; BadRequest otherwise.

    The common case costs two C-speed byte counts: fewer opening brackets than the limit
    cannot nest beyond it (brackets inside strings only over-count)."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):
            raise BadRequest(DEPTH_MESSAGE) from None
        raise
    if isinstance(value, dict | list):
        opening = (
            raw.count(b"[") + raw.count(b"{")
            if isinstance(raw, bytes)
            else raw.count("[") + raw.count("{")
        )
        if opening > MAX_JSON_DEPTH and _too_deep(value, MAX_JSON_DEPTH):
            raise BadRequest(DEPTH_MESSAGE)
    return value


def parse_timestamp(text: str, field: str) -> float:
    """An ISO-8601 timestamp within years 1-9999 (UTC), the range every layer can carry."""
    try:
        value = parse_iso(text)
    except (ValueError, OverflowError):
        raise Unprocessable(f"{field}: not an ISO-8601 timestamp: {text!r}") from None
    if not _FIRST_YEAR_1 <= value <= _LAST_YEAR_9999:
        raise Unprocessable(f"{field}: must be between years 1 and 9999 (UTC): {text!r}")
    return value


def item_timestamp(text: str, field: str) -> float:
    """A client's date for a new notification or command: from 1970 to one day ahead."""
    value = parse_timestamp(text, field)
    if value < EARLIEST:
        raise Unprocessable(f"{field}: must not be before 1970-01-01T00:00:00Z")
    if value > time.time() + MAX_FUTURE:
        raise Unprocessable(f"{field}: must not be more than 24 hours ahead of the server's clock")
    return value
