"""Field schemas and parsers that several action families share."""

from __future__ import annotations

from gateway.clock import parse_iso
from gateway.errors import Unprocessable
from gateway.schema import Array, Int, Str

NAME = Str(min_length=1, max_length=256)
TIMESTAMP = Str(max_length=64, description="ISO-8601; UTC unless it carries a zone")
NAMES = Array(NAME, max_items=256)
IDS = Array(Int(minimum=1), max_items=1000)


def timestamp(value: str | None, field: str) -> float | None:
    if value is None:
        return None
    try:
        return parse_iso(value)
    except ValueError:
        raise Unprocessable(f"{field}: not an ISO-8601 timestamp: {value!r}") from None
