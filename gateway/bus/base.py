"""The small interface both buses implement.

Delivery is at-most-once. A publisher's own instance gets its messages at once, in-process, so
local fan-out keeps working while the shared transport is down; other instances get them through
the transport.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Awaitable, Callable, Iterable

log = logging.getLogger(__name__)

Handler = Callable[[str, bytes], None]
"""Called with (channel, payload) for every message on a subscribed channel."""

ResyncHook = Callable[[], Awaitable[object]]


class Bus(abc.ABC):
    shared = False
    """True when other instances publish on this bus too: what they acknowledge reaches
    PostgreSQL within their persist interval, not at once."""

    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id
        self._handler: Handler | None = None
        self._channels: set[str] = set()
        self._resync_hooks: list[ResyncHook] = []
        self.reconnects = 0
        """Times the transport came back after a loss (read by the metrics)."""
        self.skipped = 0
        """Messages not handed to the transport: no other instance listens on their channel."""

    def set_handler(self, handler: Handler) -> None:
        self._handler = handler

    def on_resync(self, hook: ResyncHook) -> None:
        """Run ``hook`` after the transport comes back: what was published meanwhile is lost."""
        self._resync_hooks.append(hook)

    @property
    def healthy(self) -> bool:
        return True

    @property
    def channels(self) -> frozenset[str]:
        return frozenset(self._channels)

    def _deliver(self, channel: str, payload: bytes) -> None:
        if self._handler is not None and channel in self._channels:
            try:
                self._handler(channel, payload)
            except Exception:
                # A bad message must not take the reader (or the publishing request) down.
                log.exception("dropped a message on %s that its handler could not take", channel)

    def subscribe(self, channel: str) -> None:
        if channel not in self._channels:
            self._channels.add(channel)
            self._subscribed(channel)

    def unsubscribe(self, channel: str) -> None:
        if channel in self._channels:
            self._channels.discard(channel)
            self._unsubscribed(channel)

    async def settled(self, channels: Iterable[str]) -> None:  # noqa: B027 - no transport
        """Returns once the transport carries ``channels`` to this instance (bounded)."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        pass

    async def close(self) -> None:  # noqa: B027 - optional hook
        pass

    @abc.abstractmethod
    def publish(self, channel: str, payload: bytes) -> int:
        """Deliver locally now and hand to the transport; returns the number of instances the
        transport last reported for broadcast channels (1 for the in-process bus)."""

    def wants(self, channel: str) -> bool:
        """Whether another instance may listen on ``channel``: the fan-out asks before it
        hands a data message to the transport. Control messages (``publish``) always go."""
        return False

    def publish_remote(self, channel: str, payload: bytes) -> None:  # noqa: B027 - no transport
        """Hand to the transport only: the publisher delivered to this instance itself."""

    async def publish_counted(self, channel: str, payload: bytes) -> int:
        """Publish and learn how many instances received it (for receipts)."""
        return self.publish(channel, payload)

    def _subscribed(self, channel: str) -> None:  # noqa: B027 - transport hook
        pass

    def _unsubscribed(self, channel: str) -> None:  # noqa: B027 - transport hook
        pass
