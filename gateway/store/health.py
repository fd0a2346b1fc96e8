"""Whether PostgreSQL answers now: one cheap cached probe for readiness, one log line per outage.

Requests that fail because the database is unreachable report it here instead of logging a
traceback each; the first report of an outage is logged, and so is the return (with how many
requests were refused meanwhile). ``/readyz`` asks ``ready()``, which probes at most once per
``cache`` seconds however often it is polled, and counts a server that refuses writes as down.
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg

from gateway.store.db import Pool, transient

log = logging.getLogger("gateway.store")


_WRITABLE = "SELECT NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off'"
"""Whether this connection can write now: a server that answers but refuses every write is not
ready either (its writes fail with SQLSTATE 25006, taken for an outage)."""

FLAP = 2.0
"""Seconds after a recovery during which a new failure counts as the same outage."""


class DatabaseHealth:
    def __init__(self, pool: Pool, *, cache: float = 0.5, timeout: float = 1.0) -> None:
        self.pool = pool
        self.cache = cache
        self.timeout = timeout
        self._checked = 0.0
        self._ready = True
        self._probe: asyncio.Task[bool] | None = None
        self.down_since: float | None = None
        self.refused = 0
        self.outages = 0
        self._up_since = -FLAP
        self._flap = False

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def failed(self, exc: BaseException) -> bool:
        """Note a failure; True when it is an outage (transient), False for any other error."""
        if not transient(exc):
            return False
        self.refused += 1
        if self.down_since is None:
            now = time.monotonic()
            self.down_since = now
            self._ready = False
            self._checked = now
            # A server that is still starting can accept one connection and refuse the next:
            # a failure just after a recovery is the same outage, already logged.
            self._flap = now - self._up_since < FLAP
            if not self._flap:
                self.outages += 1
                log.warning(
                    "PostgreSQL unavailable (%s: %s); requests that need it get 503 until it "
                    "is back",
                    type(exc).__name__,
                    str(exc)[:200],
                )
        return True

    def succeeded(self) -> None:
        """Note that a database call just worked."""
        if self.down_since is not None:
            now = time.monotonic()
            log.log(
                logging.INFO if self._flap else logging.WARNING,
                "PostgreSQL reachable again after %.1f s (%d requests refused meanwhile)",
                now - self.down_since,
                self.refused,
            )
            self.down_since = None
            self.refused = 0
            self._up_since = now
        self._ready = True

    async def ready(self) -> bool:
        """A probe of at most ``timeout`` seconds, shared by concurrent callers, reused for
        ``cache`` seconds."""
        if time.monotonic() - self._checked < self.cache:
            return self._ready
        if self._probe is None:
            self._probe = asyncio.create_task(self._check())
        probe = self._probe
        try:
            return await asyncio.shield(probe)
        finally:
            if self._probe is probe and probe.done():
                self._probe = None

    async def _check(self) -> bool:
        try:
            async with asyncio.timeout(self.timeout):
                writable = await self.pool.fetchval(_WRITABLE)
            if not writable:
                # Not an outage of the connection but of every write: a standby after a
                # failover, or default_transaction_read_only set for upkeep.
                raise asyncpg.exceptions.ReadOnlySQLTransactionError(
                    "the server takes no writes (a standby, or default_transaction_read_only)"
                )
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            if not self.failed(exc):
                log.warning("readiness probe failed: %s: %s", type(exc).__name__, exc)
            self._ready = False
        else:
            self.succeeded()
        self._checked = time.monotonic()
        return self._ready
