"""The gateway's defaults for what a scenario reports as "the configured cost"."""

from __future__ import annotations

from typing import Any


def argon2_defaults() -> dict[str, Any]:
    """argon2id cost and hash workers as the gateway runs them unless configured otherwise."""
    from gateway.config import Settings

    defaults = Settings()
    return {
        "time_cost": defaults.argon2_time_cost,
        "memory_kib": defaults.argon2_memory_kib,
        "parallelism": defaults.argon2_parallelism,
        "hash_workers": defaults.hash_workers,
    }
