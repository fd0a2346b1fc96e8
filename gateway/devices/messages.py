"""Notifications and commands: insert, update, and the history a replay reads.

Every message is acknowledged at once, queued for a batched write and handed to the fan-out,
which delivers it to local subscribers and to other instances.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.bus.handover import Handover
from gateway.devices.access import Access
from gateway.errors import Forbidden, NotFound
from gateway.store.messages import MessageStore
from gateway.store.stored import Selection
from gateway.types import Action, Command, Device, Notification, Principal

REPLAY_PAGE = 10_000
"""Stored items a replay reads per query (without their payloads); it reads on until a page
comes back short."""

REPLAY_CHUNK = 100
"""Items of a page read whole at a time, as the replay sends them: a page of big items is
never held at once."""

REPLAY_CHUNK_BYTES = 4 * 1024 * 1024
"""And no more payload than this per read (one item bigger than it is read alone): a hundred
items of a megabyte each would otherwise be 100 MB in memory for one replay."""

Item = Notification | Command

Publish = Callable[[bytes, Notification | Command], None]
"""Hands an item to the fan-out: ``b"n"`` a notification, ``b"c"`` a command, ``b"u"`` a
command's new state."""


class Messages:
    def __init__(
        self, *, messages: MessageStore, access: Access, publish: Publish, handover: Handover
    ) -> None:
        self.messages = messages
        self.access = access
        self.publish = publish
        self.handover = handover

    def insert_notification_now(
        self,
        principal: Principal,
        device_id: str,
        name: str,
        parameters: Any,
        timestamp: float | None,
    ) -> Notification | None:
        """``insert_notification`` from the caches and the ids in hand, without a coroutine
        (the hot path): None, having done nothing, when it must wait (the device or the
        principal's memberships are not cached, the writer is behind, no id is in hand)."""
        device = self.access.known_device_for(principal, device_id, Action.CreateDeviceNotification)
        if device is None:
            return None
        if device.is_blocked:
            raise Forbidden(f"Device {device_id} is blocked")
        messages = self.messages
        if messages.behind:
            return None
        item_id = messages.take_id()
        if item_id is None:
            return None
        return self._insert_notification(device, item_id, name, parameters, timestamp)

    async def insert_notification(
        self,
        principal: Principal,
        device_id: str,
        name: str,
        parameters: Any,
        timestamp: float | None,
    ) -> Notification:
        device = await self.access.device_for(principal, device_id, Action.CreateDeviceNotification)
        if device.is_blocked:
            raise Forbidden(f"Device {device_id} is blocked")
        if self.messages.behind:
            await self.messages.room()
        item_id = self.messages.take_id()
        if item_id is None:
            item_id = await self.messages.next_id()
        return self._insert_notification(device, item_id, name, parameters, timestamp)

    def _insert_notification(
        self, device: Device, item_id: int, name: str, parameters: Any, timestamp: float | None
    ) -> Notification:
        notification = Notification(
            id=item_id,
            device_id=device.id,
            network_id=device.network_id,
            device_type_id=device.device_type_id,
            notification=name,
            parameters=parameters,
            timestamp=time.time() if timestamp is None else timestamp,
        )
        self.messages.add_notification(notification)
        self.publish(b"n", notification)
        return notification

    async def insert_command(
        self, principal: Principal, device_id: str, fields: dict[str, Any]
    ) -> Command:
        device = await self.access.device_for(principal, device_id, Action.CreateDeviceCommand)
        if self.messages.behind:
            await self.messages.room()
        now = time.time()
        command = Command(
            id=await self.messages.next_id(),
            device_id=device.id,
            network_id=device.network_id,
            device_type_id=device.device_type_id,
            user_id=principal.user_id,
            command=fields["command"],
            parameters=fields.get("parameters"),
            lifetime=fields.get("lifetime"),
            status=fields.get("status"),
            result=fields.get("result"),
            timestamp=fields.get("timestamp") or now,
            last_updated=now,
        )
        self.messages.put_command(command)
        self.publish(b"c", command)
        return command

    async def update_command(
        self,
        principal: Principal,
        device_id: str,
        command_id: int,
        fields: dict[str, Any],
        *,
        look_further: bool = False,
    ) -> Command:
        """Raises NotFound for a command neither pending here nor stored. On a cluster another
        instance may have acknowledged it a moment ago and not written it yet: with
        ``look_further`` the look-up waits for every instance's flush barrier first (callers
        that must not wait try without it, and again with it elsewhere)."""
        device = await self.access.device_for(principal, device_id, Action.UpdateDeviceCommand)
        if device.is_blocked:
            raise Forbidden(f"Device {device_id} is blocked")
        command = await self.messages.get_command(command_id)
        if command is None and look_further and self.handover.shared:
            await self.handover.barrier()
            command = await self.messages.get_command(command_id)
        if (
            command is None
            or command.device_id != device_id
            or not await self.access.reaches(principal, command)
        ):
            raise NotFound(f"Command {command_id} not found for device {device_id}")
        if self.messages.behind:
            await self.messages.room()
        updated = command.updated(
            fields.get("status", command.status), fields.get("result", command.result), time.time()
        )
        self.messages.put_command(updated)
        self.publish(b"u", updated)
        return updated

    async def history(
        self,
        kind: str,
        since: float,
        selection: Selection,
        *,
        updated: bool = False,
        page: int = REPLAY_PAGE,
    ) -> History:
        """Items newer than ``since``, pending ones included (not yet written), to be read a
        page at a time; with ``updated``, commands whose state changed since, too.

        The caller's live subscription is in place already. On a cluster, an item another
        instance acknowledged just before it is neither delivered live nor written yet: read
        only after every instance has written what it held then (the flush barrier), or a
        client reconnecting to another instance would miss it for good."""
        await self.handover.barrier()
        stamp = last_changed if updated else _timestamp
        pending = [
            item
            for item in self.messages.pending(kind)
            if stamp(item) > since and selection.matches(item)
        ]

        async def read(after: float, after_id: int | None) -> list[Item]:
            return await self.messages.since(
                kind,
                after,
                selection,
                limit=page,
                after_id=after_id,
                updated=updated,
                light=True,
            )

        async def whole(ids: list[int]) -> dict[int, Item]:
            return await self.messages.by_ids(kind, ids)

        async def sizes(ids: list[int]) -> dict[int, int]:
            return await self.messages.payload_sizes(kind, ids)

        return History(read, pending, since, page, whole, sizes, stamp)


def _timestamp(item: Item) -> float:
    return item.timestamp


def last_changed(item: Item) -> float:
    """When the item took its current state: a command's ``lastUpdated``."""
    return item.last_updated if isinstance(item, Command) else item.timestamp


class History:
    """Stored items oldest first, a page at a time (a replay may cover millions), then the
    pending ones merged into the last page. Pages are read without payloads; ``next_page``
    hands them out REPLAY_CHUNK items at a time, read whole by id (``whole``)."""

    def __init__(
        self,
        read: Callable[[float, int | None], Awaitable[list[Item]]],
        pending: list[Item],
        since: float,
        page: int,
        whole: Callable[[list[int]], Awaitable[dict[int, Item]]],
        sizes: Callable[[list[int]], Awaitable[dict[int, int]]],
        stamp: Callable[[Item], float] = _timestamp,
    ) -> None:
        self._stamp = stamp
        self._sizes = sizes
        self._read = read
        self._pending = pending
        self._cursor: tuple[float, int | None] = (since, None)
        self._page = page
        self._done = False
        self._whole = whole
        self._light: dict[int, Item] = {}
        """The page read, by id, as read (without payloads)."""
        self._ahead: list[Item] = []
        self._at = 0

    async def next_page(self) -> list[Item] | None:
        """The next items, or None once everything was read."""
        while True:
            if self._at >= len(self._ahead):
                page = await self._next_page()
                if page is None:
                    return None
                self._ahead, self._at = page, 0
            light = self._light
            chunk = self._ahead[self._at : self._at + REPLAY_CHUNK]
            wanted = [item.id for item in chunk if light.get(item.id) is item]
            if len(wanted) > 1:
                chunk = await self._within_budget(chunk, wanted)
                wanted = [item.id for item in chunk if light.get(item.id) is item]
            self._at += len(chunk)
            full = await self._whole(wanted) if wanted else {}
            # A row purged since its page was read is left out.
            items = [
                full[item.id] if light.get(item.id) is item else item
                for item in chunk
                if item.id in full or light.get(item.id) is not item
            ]
            if items:
                return items

    async def _within_budget(self, chunk: list[Item], stored: list[int]) -> list[Item]:
        """The longest head of ``chunk`` whose stored payloads (``stored``: their ids) fit in
        REPLAY_CHUNK_BYTES, at least one item; pending items are in memory already."""
        sizes = await self._sizes(stored)
        light = self._light
        total = 0
        for taken, item in enumerate(chunk):
            if light.get(item.id) is item:
                total += sizes.get(item.id, 0)
                if total > REPLAY_CHUNK_BYTES and taken:
                    return chunk[:taken]
        return chunk

    async def _next_page(self) -> list[Item] | None:
        if self._done:
            return None
        stored = await self._read(*self._cursor)
        self._light = {item.id: item for item in stored}
        if len(stored) == self._page:
            last = stored[-1]
            self._cursor = (self._stamp(last), last.id)
            return stored
        self._done = True
        by_id = {item.id: item for item in stored}
        for item in self._pending:
            # A command may be stored in one state and pending in a newer one (an update not
            # written yet), or written in a newer state than the pending copy read before.
            known = by_id.get(item.id)
            if known is None or last_changed(item) > last_changed(known):
                by_id[item.id] = item
        stamp = self._stamp
        return sorted(by_id.values(), key=lambda item: (stamp(item), item.id))
