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
    Control,
)
from gateway.store.devices import DeviceStore
from gateway.store.users import UserStore
from gateway.types import Device

log = logging.getLogger(__name__)

RESYNCED = "resynced"
"""Told to listeners (not sent on the bus) after a reload from PostgreSQL changed something."""

_NO_NETWORKS: frozenset[int] = frozenset()

Listener = Callable[[str, dict[str, Any]], None]


class Registry:
    def __init__(self, devices: DeviceStore, users: UserStore, control: Control) -> None:
        self.store = devices
        self.users = users
        self._devices: dict[str, Device] = {}
        self._memberships: dict[int, frozenset[int]] = {}
        self.network_ids: set[int] = set()
        self._listeners: list[Listener] = []
        control.on(DEVICE_SAVED, self._on_device_saved)
        control.on(DEVICE_DELETED, self._on_device_deleted)
        control.on(NETWORK_CREATED, self._on_network_created)
        control.on(NETWORK_DELETED, self._on_network_deleted)
        control.on(MEMBERSHIP, self._on_membership)
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
        Subscriptions are re-routed only when something changed."""
        networks = {network.id for network in await self.store.networks()}
        users = list(self._memberships)
        memberships = await self.users.memberships_of(users) if users else {}
        devices = await self.store.devices_by_id(list(self._devices)) if self._devices else {}
        changed = networks != self.network_ids or any(
            self._memberships.get(user_id) != networks_now
            for user_id, networks_now in memberships.items()
        )
        self.network_ids = networks
        self._memberships.update(memberships)
        self._devices = devices
        if changed:
            self._changed(RESYNCED, {})

    async def refresh_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.resync()
            except (OSError, TimeoutError) as exc:
                log.warning("refreshing the device and membership caches failed: %s", exc)
            except Exception:
                log.exception("refreshing the device and membership caches failed")

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

    async def load_memberships(self, user_id: int) -> frozenset[int]:
        networks = await self.users.network_ids(user_id)
        self._memberships[user_id] = networks
        return networks

    # -- control events --------------------------------------------------------------------

    def _on_device_saved(self, event: dict[str, Any]) -> None:
        device = Device.from_json(event["device"])
        self._devices[device.id] = device
        self._changed(DEVICE_SAVED, event)

    def _on_device_deleted(self, event: dict[str, Any]) -> None:
        self._devices.pop(event["id"], None)
        self._changed(DEVICE_DELETED, event)

    def _on_network_created(self, event: dict[str, Any]) -> None:
        self.network_ids.add(int(event["id"]))
        self._changed(NETWORK_CREATED, event)

    def _on_network_deleted(self, event: dict[str, Any]) -> None:
        network_id = int(event["id"])
        self.network_ids.discard(network_id)
        for device_id in event.get("device_ids", ()):
            self._devices.pop(device_id, None)
        for user_id, networks in list(self._memberships.items()):
            if network_id in networks:
                self._memberships[user_id] = networks - {network_id}
        self._changed(NETWORK_DELETED, event)

    def _on_membership(self, event: dict[str, Any]) -> None:
        user_id = int(event["user_id"])
        networks = event.get("network_ids")
        if user_id in self._memberships or networks is not None:
            self._memberships[user_id] = frozenset(networks or ())
        self._changed(MEMBERSHIP, event)
