"""Benchmarks of the gateway against a bare aiohttp relay measured in the same run.

``python -m bench`` (or ``make bench``) runs every scenario; see bench/README.md. Timings live
here and never in the test suite.
"""

from __future__ import annotations

import resource
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"


def raise_nofile_limit() -> int:
    """Lift the soft open-file limit to the hard one: every session is a file descriptor, and
    children (servers, load generators) inherit the raised limit. Returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            return soft
        return hard
    return soft
