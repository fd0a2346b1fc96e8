"""Value parsers: one operator-written string in, one typed value out, or a one-line ValueError.

A parser is also its option's check (a port parser refuses 70000), so a value that reached
``Settings`` through the environment or a flag was checked exactly once, here. The message names
the problem only; the loader prefixes it with the variable or flag that carried the value.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}

ALGORITHMS = ("HS256", "RS256", "ES256", "EdDSA")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def parse_duration(text: str) -> float:
    """Seconds from ``"90"``, ``"90s"``, ``"30m"``, ``"12h"``, ``"30d"`` or ``"200ms"``."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use seconds, or a number with ms/s/m/h/d)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


_LABEL = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def label(text: str) -> str:
    """A name that goes into Redis channel names and log lines: no space, no control
    character (a newline would forge a log line)."""
    if not _LABEL.fullmatch(text):
        raise ValueError(f"must be 1-128 of A-Z a-z 0-9 . _ : -, got {text!r}")
    return text


def optional_label(text: str) -> str:
    """A label, or empty for the default."""
    return text and label(text)


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {text!r} (use true or false)")


def integer(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"not an integer: {text!r}") from None


def positive_int(text: str) -> int:
    value = integer(text)
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"not a number: {text!r}") from None
    if not 0 < value < math.inf:  # float() also takes "nan" and "inf"
        raise ValueError(f"must be a finite number greater than zero, got {text!r}")
    return value


def port(text: str) -> int:
    value = integer(text)
    if not 0 <= value <= 65535:
        raise ValueError(f"not a TCP port: {value}")
    return value


def non_negative_duration(text: str) -> float:
    value = parse_duration(text)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def positive_duration(text: str) -> float:
    value = parse_duration(text)
    if value <= 0:
        raise ValueError("must be greater than zero")
    return value


def one_of(*choices: str) -> Callable[[str], str]:
    """A case-insensitive choice, returned as the choice is spelled here."""

    def parse(text: str) -> str:
        for choice in choices:
            if text.strip().lower() == choice.lower():
                return choice
        raise ValueError(f"unknown value {text!r} (one of {', '.join(choices)})")

    return parse


def comma_separated(item: Callable[[str], T]) -> Callable[[str], tuple[T, ...]]:
    """``a, b, c`` parsed item by item; blanks are skipped, so an empty text is ``()``."""

    def parse(text: str) -> tuple[T, ...]:
        return tuple(item(part.strip()) for part in text.split(",") if part.strip())

    return parse


def ip_network(text: str) -> IPNetwork:
    """An address (``10.0.0.5``) or a network (``172.28.0.0/16``)."""
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"not an IP address or network: {text!r}") from None


def algorithm(text: str) -> str:
    for name in ALGORITHMS:
        if text.strip().lower() == name.lower():
            return name
    raise ValueError(f"unsupported algorithm {text!r} (one of {', '.join(ALGORITHMS)})")


def log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"unknown log level {text!r} (DEBUG, INFO, WARNING or ERROR)")
    return level


_ORIGIN = re.compile(
    r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:\d{1,5})?$"
)


def origin(text: str) -> str:
    """What a browser sends as Origin (scheme, host, optional port; no path), or ``*``."""
    value = text.strip().rstrip("/")
    if value != "*" and not _ORIGIN.match(value):
        raise ValueError(f"not an origin (scheme://host[:port]) or *: {value!r}")
    return value if value == "*" else value.lower()
