"""One subscription of the client: an async iterator that survives reconnects with no gap and no
repeat (it resumes from the last item it received and drops what it has seen).

Its queue is bounded: a consumer slower than the pushes stops queueing at ``max_pending`` items
and, once it has taken them, resumes from the last one, as after a reconnect (the gateway
replays the rest from PostgreSQL). Memory stays bounded and nothing is skipped."""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, Self

import orjson

from gateway.client.errors import ClientClosed, GatewayClientError

if TYPE_CHECKING:
    from gateway.client.connection import Connection

MAX_PENDING = 10_000
"""Items a subscription queues for its consumer before it stops queueing and resumes later."""

SEEN = 10_000
"""How many item keys a subscription remembers to drop repeats. A resume replays from the last
item's timestamp (millisecond precision), so only items of that millisecond come back."""


class Subscription:
    """``async for item in subscription``: the ``notification`` or ``command`` object of each
    push, oldest first. Created by :meth:`GatewayClient.notifications` or
    :meth:`GatewayClient.commands`; subscribes on first use (or on ``await start()``)."""

    def __init__(
        self,
        connection: Connection,
        kind: str,
        filters: dict[str, Any],
        since: str | None,
        with_updates: bool = False,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.kind = kind
        self.filters = filters
        self.since = since
        """The resume point: the timestamp of the last item received (the server's string)."""
        self.with_updates = with_updates
        self.max_pending = max_pending
        self.resumed = 0
        """Times the consumer fell ``max_pending`` items behind and the subscription resumed."""
        self.generation: int | None = None
        """The connection generation it is subscribed on (None: not subscribed now)."""
        self.subscription_id: int | None = None
        self.settled = asyncio.Event()
        """Set once the first subscribe was answered (or the subscription failed)."""
        self._connection = connection
        self._items: deque[dict[str, Any]] = deque()
        self._wake = asyncio.Event()
        self._seen: OrderedDict[Hashable, None] = OrderedDict()
        self._error: GatewayClientError | None = None
        self._ended = False
        self._started = False
        self._behind = False

    # -- what the connection calls ---------------------------------------------------------

    def subscribe_fields(self) -> dict[str, Any]:
        fields = dict(self.filters)
        if self.since is not None:
            fields["timestamp"] = self.since
        if self.kind == "command" and self.with_updates:
            fields["returnUpdatedCommands"] = True
        return fields

    def bound(self, generation: int, subscription_id: int) -> None:
        self.generation = generation
        self.subscription_id = subscription_id
        self.settled.set()

    def deliver(self, action: str, item: dict[str, Any]) -> None:
        """Queue one pushed item unless it was seen already. A command update has the id of
        its command: it is a new item when its state (``lastUpdated``, ``status``, ``result``)
        is new."""
        key: Hashable = item.get("id")
        if self.kind == "command":
            result = orjson.dumps(item.get("result"), option=orjson.OPT_SORT_KEYS)
            key = (key, item.get("lastUpdated"), item.get("status"), result)
        if key in self._seen:
            return
        if len(self._items) >= self.max_pending:
            # Not seen, and the resume point stays at the last item queued: the replay after
            # the consumer caught up brings this one back.
            self._behind = True
            return
        self._seen[key] = None
        if len(self._seen) > SEEN:
            self._seen.popitem(last=False)
        stamp = item.get("timestamp")
        if action.endswith("/insert") and isinstance(stamp, str):
            self.since = stamp
        self._items.append(item)
        self._wake.set()

    def fail(self, error: GatewayClientError) -> None:
        """End the iteration with ``error`` once the items already received are taken;
        :class:`ClientClosed` ends it quietly."""
        if isinstance(error, ClientClosed):
            self._ended = True
        elif self._error is None:
            self._error = error
        self.settled.set()
        self._wake.set()

    # -- the public side -------------------------------------------------------------------

    async def start(self) -> Self:
        """Subscribe now (iteration does it on its own): when this returns, every item
        inserted afterwards will be yielded."""
        if not self._started:
            self._started = True
            if self.since is None:
                # "From now" is a timestamp too, so a reconnect before the first item resumes
                # from it instead of leaving a gap.
                info = await self._connection.request("server/info", {})
                self.since = str(info["info"]["serverTimestamp"])
            await self._connection.add(self)
        if self._error is not None and not self._items:
            raise self._error
        return self

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> dict[str, Any]:
        await self.start()
        while True:
            if self._items:
                return self._items.popleft()
            if self._error is not None:
                raise self._error
            if self._ended:
                raise StopAsyncIteration
            if self._behind:
                await self._resume()
                continue
            self._wake.clear()
            await self._wake.wait()

    async def _resume(self) -> None:
        """Subscribe again from the last item queued: what was left out comes back."""
        self._behind = False
        self.resumed += 1
        await self._connection.remove(self)
        self.settled.clear()
        self.generation = self.subscription_id = None
        await self._connection.add(self)

    def pending(self) -> int:
        """Items received and not yet taken."""
        return len(self._items)

    async def aclose(self) -> None:
        """Unsubscribe; the iteration ends after the items already received."""
        self._ended = True
        self._wake.set()
        await self._connection.remove(self)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
