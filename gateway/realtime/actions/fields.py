"""Field schemas and parsers that several action families share."""

from __future__ import annotations

from gateway.limits import item_timestamp, parse_timestamp
from gateway.schema import Array, Int, Str

NAME = Str(min_length=1, max_length=256)
TIMESTAMP = Str(max_length=64, description="ISO-8601; UTC unless it carries a zone")
NAMES = Array(NAME, max_items=256)
IDS = Array(Int(minimum=1), max_items=1000)


def timestamp(value: str | None, field: str) -> float | None:
    """The date a client gives a new notification or command (see gateway.limits)."""
    return None if value is None else item_timestamp(value, field)


def since(value: str | None, field: str) -> float | None:
    """The ``timestamp`` of a subscribe: any time within years 1-9999."""
    return None if value is None else parse_timestamp(value, field)
