"""Revocation fan-out: write to PostgreSQL, then tell every instance, then collect receipts.

Every instance (this one included, through the same path) applies the revocation to its view,
closes the live sessions it covers and answers on the origin's reply channel with how many it
closed. The origin waits a bounded time for the receipts it expects.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from gateway.auth.revocation import RevocationView
from gateway.bus.control import Control
from gateway.metrics import Metrics
from gateway.store.db import transient
from gateway.store.sessions import RevocationStore
from gateway.types import Revocation

log = logging.getLogger(__name__)

Closer = Callable[[list[Revocation]], int]
"""Closes the live sessions that the revocations cover; returns how many it closed."""

# A row committed late may carry a recorded_at a little before the last sync; look back this far.
_RECONCILE_OVERLAP = timedelta(seconds=30)


@dataclass(slots=True)
class Receipt:
    instances: dict[str, int] = field(default_factory=dict)

    @property
    def sessions_closed(self) -> int:
        return sum(self.instances.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "sessions_closed": self.sessions_closed,
            "instances": [
                {"instance": name, "sessions_closed": count}
                for name, count in sorted(self.instances.items())
            ],
        }


@dataclass(slots=True)
class _Waiting:
    receipt: Receipt = field(default_factory=Receipt)
    expected: int = 1
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, instance: str, closed: int) -> None:
        self.receipt.instances[instance] = closed
        if len(self.receipt.instances) >= self.expected:
            self.done.set()


class Revoker:
    def __init__(
        self,
        store: RevocationStore,
        view: RevocationView,
        control: Control,
        *,
        wait: float,
        reconcile_interval: float,
        metrics: Metrics,
    ) -> None:
        self.metrics = metrics
        self.store = store
        self.view = view
        self.control = control
        self.wait = wait
        self.reconcile_interval = reconcile_interval
        self._closers: list[Closer] = []
        self._waiting: dict[str, _Waiting] = {}
        self._publishing: set[asyncio.Future[int]] = set()
        self._synced_at: datetime | None = None
        self.last_reconciled: float = 0.0
        control.on("revoke", self._on_revoke)
        control.on("revoked", self._on_receipt)
        control.bus.on_resync(self.reconcile)

    def add_closer(self, closer: Closer) -> None:
        self._closers.append(closer)

    async def revoke(self, *revocations: Revocation) -> Receipt:
        """Record, fan out, and report how many live sessions each instance closed."""
        await self.store.add(*revocations)
        self.metrics.revoked(revocations[0].reason)  # a logout's two rows are one revocation
        request = uuid.uuid4().hex
        waiting = self._waiting[request] = _Waiting()
        try:
            # Bounded like the receipts: a Redis that does not answer (paused, overloaded) must
            # not hold the request. The publish goes on without it; the revocation is stored,
            # so an instance it never reaches applies it at its next reconciliation.
            publish = asyncio.ensure_future(
                self.control.publish_counted(
                    "revoke", request=request, revocations=[r.to_dict() for r in revocations]
                )
            )
            self._publishing.add(publish)
            publish.add_done_callback(self._published)
            await asyncio.wait({publish}, timeout=self.wait)
            expected = 1
            if not publish.done():
                log.info(
                    "revocation: the bus did not take the message within %.0f ms; reporting "
                    "this instance only",
                    self.wait * 1000,
                )
            elif not publish.cancelled() and publish.exception() is None:
                expected = publish.result()
            waiting.expected = max(expected, 1)
            if len(waiting.receipt.instances) < waiting.expected:
                waiting.done.clear()
                try:
                    await asyncio.wait_for(waiting.done.wait(), self.wait)
                except TimeoutError:
                    log.info(
                        "revocation receipts: %d of %d instances answered within %.0f ms",
                        len(waiting.receipt.instances),
                        waiting.expected,
                        self.wait * 1000,
                    )
        finally:
            del self._waiting[request]
        return waiting.receipt

    def _published(self, publish: asyncio.Future[int]) -> None:
        self._publishing.discard(publish)
        if not publish.cancelled() and publish.exception() is not None:
            log.error("publishing a revocation failed", exc_info=publish.exception())

    def _apply(self, revocations: list[Revocation]) -> int:
        for revocation in revocations:
            self.view.apply(revocation)
        return sum(closer(revocations) for closer in self._closers)

    def _on_revoke(self, event: dict[str, Any]) -> None:
        revocations = [Revocation.from_dict(item) for item in event["revocations"]]
        closed = self._apply(revocations)
        if event.get("request"):
            self.control.reply(
                event["origin"], "revoked", request=event["request"], sessions_closed=closed
            )

    def _on_receipt(self, event: dict[str, Any]) -> None:
        waiting = self._waiting.get(event.get("request", ""))
        if waiting is not None:
            waiting.add(str(event["origin"]), int(event["sessions_closed"]))

    async def reconcile(self) -> int:
        """Catch up from PostgreSQL: what a lost bus message did not bring arrives here."""
        since = None if self._synced_at is None else self._synced_at - _RECONCILE_OVERLAP
        revocations, now = await self.store.recorded_since(since)
        closed = self._apply(revocations) if revocations else 0
        self._synced_at = now
        self.last_reconciled = time.monotonic()
        if closed:
            log.warning(
                "reconciliation closed %d sessions a lost revocation message covered", closed
            )
        return closed

    async def reconcile_and_prune(self) -> None:
        """One step of the supervised loop that runs every ``reconcile_interval``."""
        await self.reconcile()
        self.view.prune()


async def bookkeeping(step: Awaitable[None], what: str) -> None:
    """Runs what follows a revocation in force (marking login sessions closed). The revocation
    is stored and sent by then, so a failure here must not fail the request (its retry would
    only get 401, the token being revoked): it is logged, and the request succeeds."""
    try:
        await step
    except Exception as exc:
        if not transient(exc):
            log.exception("%s could not be marked closed (the revocation is in force)", what)
            return
        log.warning(
            "%s could not be marked closed (the revocation is in force): PostgreSQL "
            "unreachable: %s",
            what,
            type(exc).__name__,
        )
