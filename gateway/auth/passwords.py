"""argon2id hashing, always off the event loop.

argon2-cffi releases the GIL while hashing, so a small thread pool keeps the loop free and lets
logins use the machine's cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


def _lower_priority() -> None:
    """Hashing threads yield the CPU to the event loop: on a busy machine a login may take a
    little longer, but live sessions do not stall behind it (Linux: per-thread nice)."""
    if hasattr(os, "setpriority"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


class Passwords:
    def __init__(self, time_cost: int, memory_kib: int, parallelism: int, workers: int) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        self._executor = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="argon2", initializer=_lower_priority
        )
        # Unknown users are checked against this hash, so they cost the same time as known ones.
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when the password matches; a missing hash still spends one verification."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, self._verify, password_hash or self._dummy, password, password_hash
        )

    def _verify(self, encoded: str, password: str, real: str | None) -> bool:
        try:
            matched = self._hasher.verify(encoded, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return matched and real is not None

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
