"""The wire's timestamps: the cached formatter writes exactly what strftime would."""

from __future__ import annotations

import time

import pytest

from gateway.clock import iso, parse_iso


def _reference(epoch: float) -> str:
    whole, micros = divmod(round(epoch * 1_000_000), 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{micros // 1000:03d}Z"


@pytest.mark.parametrize(
    ("epoch", "text"),
    [
        (0.0, "1970-01-01T00:00:00.000Z"),
        (1_795_000_000.678, "2026-11-18T11:06:40.678Z"),
        (1_795_000_000.9999, "2026-11-18T11:06:40.999Z"),
        (1_795_000_000.9999996, "2026-11-18T11:06:41.000Z"),
        (1_795_000_001.0004, "2026-11-18T11:06:41.000Z"),
        (-0.5, "1969-12-31T23:59:59.500Z"),
    ],
)
def test_iso_truncates_to_the_millisecond(epoch: float, text: str) -> None:
    assert iso(epoch) == text


def test_iso_matches_strftime_across_seconds_and_repeats() -> None:
    epochs = [1_795_000_000 + step * 0.000_37 for step in range(10_000)]
    epochs += [1_795_000_000.5, 1_795_000_000.5, 1_700_000_000.25, 1_795_000_000.5]
    assert [iso(e) for e in epochs] == [_reference(e) for e in epochs]


def test_iso_round_trips_through_parse_iso() -> None:
    assert iso(parse_iso(iso(1_795_000_000.678))) == "2026-11-18T11:06:40.678Z"
