"""History use cases: a device's notifications and commands, listed page by page or long-polled.

Rights are the device's (GetDeviceNotification / GetDeviceCommand, the token's scope and the
caller's live memberships), checked by the same device look-up every other device action uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Iterator
from typing import Protocol

from gateway.errors import Forbidden, TooManyRequests
from gateway.store.history import Item, Query, any_pending, find
from gateway.store.messages import MessageStore
from gateway.types import Action, Device, Principal

MAX_WAIT = 60.0
"""The longest a long poll may wait (DeviceHive's bound on ``waitTimeout``)."""

DEFAULT_WAIT = 30.0

RECHECK = 1.0
"""How often a waiting poll reads PostgreSQL again: items acknowledged by another instance (or
written here between a wake-up and its look) reach it that way, at most this late."""

NEEDS = {"notification": Action.GetDeviceNotification, "command": Action.GetDeviceCommand}


class DeviceAccess(Protocol):
    async def device_for(self, principal: Principal, device_id: str, action: Action) -> Device:
        """The device when the principal holds ``action`` and reaches it; else 403/404."""

    async def visible_networks(self, principal: Principal) -> frozenset[int] | None:
        """The networks a principal may see (None: all)."""

    def type_limits(self, principal: Principal) -> frozenset[int] | None:
        """The device types a client may reach, when not all."""


class HistoryService:
    def __init__(
        self, messages: MessageStore, devices: DeviceAccess, max_waiting: int = 32
    ) -> None:
        self.messages = messages
        self.devices = devices
        self.max_waiting = max_waiting
        """Long polls one user may have waiting at once on this instance: each wakes at every
        arrival, so their number must meet a bound."""
        self._waiting: dict[int, int] = {}
        self._stop: asyncio.Future[None] | None = None
        self.closing = False

    def close(self) -> None:
        """Shutdown: waiting polls answer with what they have (nothing) instead of holding the
        server for their waitTimeout."""
        self.closing = True
        if self._stop is not None and not self._stop.done():
            self._stop.set_result(None)

    def _stopped(self) -> asyncio.Future[None]:
        if self._stop is None:
            self._stop = asyncio.get_running_loop().create_future()
            if self.closing:
                self._stop.set_result(None)
        return self._stop

    async def _of_device(self, principal: Principal, device_id: str, query: Query) -> Query:
        """``query`` over one device the principal reaches, and item by item within its reach:
        a device's history may hold items sent in another network (the device moved, or a
        deleted device's id was registered again elsewhere), shown only to whoever reaches
        that network, as a push or a replay is."""
        await self.devices.device_for(principal, device_id, NEEDS[query.kind])
        return dataclasses.replace(
            query,
            device_ids=(device_id,),
            network_ids=await self.devices.visible_networks(principal),
            open_types=self.devices.type_limits(principal),
        )

    async def page(self, principal: Principal, device_id: str, query: Query) -> list[Item]:
        """One page of a device's history (``query.device_ids`` is set to that device)."""
        return await find(self.messages, await self._of_device(principal, device_id, query))

    async def poll(
        self, principal: Principal, device_id: str, query: Query, wait: float
    ) -> list[Item]:
        """What matches now, or else the first items that arrive within ``wait`` seconds
        (bounded by MAX_WAIT); an empty list when none do."""
        query = await self._of_device(principal, device_id, self.from_now(query))
        return await self.wait_for(query, min(max(wait, 0.0), MAX_WAIT), principal.user_id)

    async def poll_reach(
        self,
        principal: Principal,
        query: Query,
        wait: float,
        *,
        device_id: str | None = None,
        network_ids: frozenset[int] | None = None,
    ) -> list[Item]:
        """A poll over one device, or over every device the principal reaches (in
        ``network_ids`` when given, which must all be visible), as a subscription would."""
        if device_id is not None:
            return await self.poll(principal, device_id, query, wait)
        needed = NEEDS[query.kind]
        if not principal.may(needed):
            raise Forbidden(f"Missing permission: {needed.name}")
        visible = await self.devices.visible_networks(principal)
        outside = sorted(network_ids - visible) if network_ids and visible is not None else []
        if outside:
            raise Forbidden("networkIds outside the token's scope: " + ", ".join(map(str, outside)))
        reach = dataclasses.replace(
            self.from_now(query),
            network_ids=network_ids if network_ids is not None else visible,
            device_ids=principal.scope.device_ids,
            open_types=self.devices.type_limits(principal),
        )
        return await self.wait_for(reach, min(max(wait, 0.0), MAX_WAIT), principal.user_id)

    @staticmethod
    def from_now(query: Query) -> Query:
        """A poll with neither a cursor nor a ``since`` waits for what comes from now on."""
        if query.after is None and query.since is None:
            return dataclasses.replace(query, since=time.time())
        return query

    async def wait_for(self, query: Query, wait: float, user_id: int) -> list[Item]:
        """Read; when nothing matches, wait for an arrival here that matches (or RECHECK) and
        read again, until ``wait`` has passed. The caller has checked the rights."""
        deadline = time.monotonic() + wait
        items = await find(self.messages, query)
        if items or wait <= 0 or self.closing:
            return items
        with self._slot(user_id):
            while not items:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.closing:
                    return []
                recheck = time.monotonic() + min(remaining, RECHECK)
                while (left := recheck - time.monotonic()) > 0 and not self.closing:
                    arrival = self.messages.arrival()
                    await asyncio.wait((arrival, self._stopped()), timeout=left)
                    if arrival.done() and any_pending(self.messages, query):
                        break
                items = await find(self.messages, query)
        return items

    @contextlib.contextmanager
    def _slot(self, user_id: int) -> Iterator[None]:
        held = self._waiting.get(user_id, 0)
        if held >= self.max_waiting:
            raise TooManyRequests(
                f"Too many long polls waiting for this user (at most {self.max_waiting})",
                retry_after=1,
            )
        self._waiting[user_id] = held + 1
        try:
            yield
        finally:
            if self._waiting[user_id] == 1:
                del self._waiting[user_id]
            else:
                self._waiting[user_id] -= 1
