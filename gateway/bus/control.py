"""Control events between instances: revocations, receipts, device and membership changes.

Events are small JSON objects with a ``type``; modules register a handler per type. Data
channels (device and network messages) go to one data handler, the hub.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import orjson

from gateway.bus.base import Bus, Handler

log = logging.getLogger(__name__)

CONTROL_CHANNEL = "ctl"

# Control events that keep every instance's device and membership caches current.
DEVICE_SAVED = "device.saved"
DEVICE_DELETED = "device.deleted"
NETWORK_CREATED = "network.created"
NETWORK_DELETED = "network.deleted"
MEMBERSHIP = "membership"
TYPE_ACCESS = "device_types.access"

EventHandler = Callable[[dict[str, Any]], None]


class Control:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.instance_id = bus.instance_id
        self.reply_channel = f"reply:{bus.instance_id}"
        self._handlers: defaultdict[str, list[EventHandler]] = defaultdict(list)
        self._data_handler: Handler | None = None
        bus.set_handler(self._dispatch)
        bus.subscribe(CONTROL_CHANNEL)
        bus.subscribe(self.reply_channel)

    def on(self, event_type: str, handler: EventHandler) -> None:
        self._handlers[event_type].append(handler)

    def set_data_handler(self, handler: Handler) -> None:
        self._data_handler = handler

    def _event(self, event_type: str, fields: dict[str, Any]) -> bytes:
        return orjson.dumps({"type": event_type, "origin": self.instance_id, **fields})

    def publish(self, event_type: str, **fields: Any) -> None:
        self.bus.publish(CONTROL_CHANNEL, self._event(event_type, fields))

    async def publish_counted(self, event_type: str, **fields: Any) -> int:
        """Publish and return how many instances (this one included) received it."""
        return await self.bus.publish_counted(CONTROL_CHANNEL, self._event(event_type, fields))

    def reply(self, origin: str, event_type: str, **fields: Any) -> None:
        self.bus.publish(f"reply:{origin}", self._event(event_type, fields))

    def _dispatch(self, channel: str, payload: bytes) -> None:
        if channel != CONTROL_CHANNEL and channel != self.reply_channel:
            if self._data_handler is not None:
                self._data_handler(channel, payload)
            return
        try:
            event = orjson.loads(payload)
            handlers = self._handlers.get(event["type"], ())
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("dropped a malformed control event on %s", channel)
            return
        for handler in handlers:
            try:
                handler(event)
            except Exception:
                # One faulty handler must not stop the others nor the bus reader.
                log.exception("control handler for %r failed", event.get("type"))
