"""The caches the per-message check reads: device -> network, user -> networks, all networks.

They are filled from PostgreSQL on first use and kept current by control events from every
instance, so the hot path reads dicts and never waits on the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from gateway.bus.control import (
    DEVICE_DELETED,
    DEVICE_SAVED,
    MEMBERSHIP,
    NETWORK_CREATED,
    NETWORK_DELETED,
    TYPE_ACCESS,
    Control,
)
from gateway.store.devices import DeviceStore
from gateway.store.devicetypes import DeviceTypeStore
from gateway.store.users import UserStore
from gateway.types import Device

log = logging.getLogger(__name__)

RESYNCED = "resynced"
"""Told to listeners (not sent on the bus) after a reload from PostgreSQL changed something."""

_NO_NETWORKS: frozenset[int] = frozenset()

Listener = Callable[[str, dict[str, Any]], None]
Apply = Callable[[dict[str, Any]], None]


class Registry:
    def __init__(self, devices: DeviceStore, users: UserStore, control: Control) -> None:
        self.store = devices
        self.users = users
        self._devices: dict[str, Device] = {}
        self._memberships: dict[int, frozenset[int]] = {}
        self.network_ids: set[int] = set()
        self._listeners: list[Listener] = []
        self._since_reload: list[tuple[Apply, dict[str, Any]]] | None = None
        self._reloading = asyncio.Lock()
        self.types: DeviceTypeStore | None = None
        """Set when device type access is enforced (the wiring sets it)."""
        self._type_limits: dict[int, frozenset[int]] = {}
        """Users held here who reach only some device types (the others reach every one)."""
        control.on(DEVICE_SAVED, self._on(DEVICE_SAVED, self._apply_device_saved))
        control.on(DEVICE_DELETED, self._on(DEVICE_DELETED, self._apply_device_deleted))
        control.on(NETWORK_CREATED, self._on(NETWORK_CREATED, self._apply_network_created))
        control.on(NETWORK_DELETED, self._on(NETWORK_DELETED, self._apply_network_deleted))
        control.on(MEMBERSHIP, self._on(MEMBERSHIP, self._apply_membership))
        control.on(TYPE_ACCESS, self._on(TYPE_ACCESS, self._apply_type_access))
        control.bus.on_resync(self.resync)

    def listen(self, listener: Listener) -> None:
        """Told (event type, event) after the caches changed; the hub re-routes subscriptions."""
        self._listeners.append(listener)

    def _changed(self, kind: str, event: dict[str, Any]) -> None:
        for listener in self._listeners:
            listener(kind, event)

    async def load(self) -> None:
        self.network_ids = {network.id for network in await self.store.networks()}

    async def resync(self) -> None:
        """Reload what control events keep current: networks, the memberships and devices held
        here. Run after a bus outage (the changes announced meanwhile never came) and every
        reconcile interval (a single lost control message is wrong for at most that long).

        Events and loads that arrive while the reload awaits PostgreSQL are applied at once and
        also kept; the reloaded state is then laid under them (they are newer than what the
        reload read). Subscriptions are re-routed only when something changed."""
        async with self._reloading:  # the periodic reload and a bus resync may overlap
            await self._reload()

    async def _reload(self) -> None:
        since: list[tuple[Apply, dict[str, Any]]] = []
        self._since_reload = since
        try:
            networks = {network.id for network in await self.store.networks()}
            users = list(self._memberships)
            memberships = await self.users.memberships_of(users) if users else {}
            limits = await self.types.limits_of(users) if self.types and users else {}
            device_ids = list(self._devices)
            devices = await self.store.devices_by_id(device_ids) if device_ids else {}
        finally:
            self._since_reload = None
        before = (set(self.network_ids), dict(self._memberships))
        self.network_ids = networks
        self._memberships.update(memberships)
        for user_id, limit in limits.items():
            self._apply_type_access({"user_id": user_id, "deviceTypeIds": limit})
        fetched_meanwhile = {
            device_id: device
            for device_id, device in self._devices.items()
            if device_id not in device_ids
        }
        self._devices = devices | fetched_meanwhile
        for apply, event in since:
            apply(event)
        if (self.network_ids, self._memberships) != before:
            self._changed(RESYNCED, {})

    # -- reads (hot path) ------------------------------------------------------------------

    def device(self, device_id: str) -> Device | None:
        return self._devices.get(device_id)

    async def fetch_device(self, device_id: str) -> Device | None:
        device = self._devices.get(device_id)
        if device is None:
            device = await self.store.get_device(device_id)
            if device is not None:
                self._devices[device_id] = device
        return device

    def memberships(self, user_id: int) -> frozenset[int]:
        return self._memberships.get(user_id, _NO_NETWORKS)

    def known_memberships(self, user_id: int) -> frozenset[int] | None:
        """None when this user's memberships were never loaded here (empty is a real answer)."""
        return self._memberships.get(user_id)

    def type_allowed(self, user_id: int, device_type_id: int | None) -> bool:
        """Whether the user's device type access reaches a device of this type (untyped
        devices are open to all): one dict look-up."""
        limits = self._type_limits.get(user_id)
        return limits is None or device_type_id is None or device_type_id in limits

    def type_limits(self, user_id: int) -> frozenset[int] | None:
        return self._type_limits.get(user_id)

    async def load_memberships(self, user_id: int) -> frozenset[int]:
        if self.types is not None:
            for held, limit in (await self.types.limits_of([user_id])).items():
                access = {"user_id": held, "deviceTypeIds": limit}
                self._apply_type_access(access)
                if self._since_reload is not None:
                    self._since_reload.append((self._apply_type_access, access))
        networks = await self.users.network_ids(user_id)
        event = {"user_id": user_id, "network_ids": sorted(networks)}
        self._apply_membership(event)
        if self._since_reload is not None:
            self._since_reload.append((self._apply_membership, event))
        return networks

    # -- control events --------------------------------------------------------------------

    def _on(self, kind: str, apply: Apply) -> Callable[[dict[str, Any]], None]:
        """A control-event handler: apply it (and keep it, during a reload), then tell
        listeners."""

        def handle(event: dict[str, Any]) -> None:
            apply(event)
            if self._since_reload is not None:
                self._since_reload.append((apply, event))
            self._changed(kind, event)

        return handle

    def _apply_device_saved(self, event: dict[str, Any]) -> None:
        device = Device.from_json(event["device"])
        self._devices[device.id] = device

    def _apply_device_deleted(self, event: dict[str, Any]) -> None:
        self._devices.pop(event["id"], None)

    def _apply_network_created(self, event: dict[str, Any]) -> None:
        self.network_ids.add(int(event["id"]))

    def _apply_network_deleted(self, event: dict[str, Any]) -> None:
        network_id = int(event["id"])
        self.network_ids.discard(network_id)
        for device_id in event.get("device_ids", ()):
            self._devices.pop(device_id, None)
        for user_id, networks in list(self._memberships.items()):
            if network_id in networks:
                self._memberships[user_id] = networks - {network_id}

    def _apply_type_access(self, event: dict[str, Any]) -> None:
        ids = event.get("deviceTypeIds")
        if ids is None:
            self._type_limits.pop(int(event["user_id"]), None)
        else:
            self._type_limits[int(event["user_id"])] = frozenset(ids)

    def _apply_membership(self, event: dict[str, Any]) -> None:
        user_id = int(event["user_id"])
        networks = event.get("network_ids")
        if user_id in self._memberships or networks is not None:
            self._memberships[user_id] = frozenset(networks or ())
