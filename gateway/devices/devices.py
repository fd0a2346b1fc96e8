"""Devices: list, register or update, delete.

Every change is written to PostgreSQL, then announced on the control channel so that every
instance's device cache follows.
"""

from __future__ import annotations

from typing import Any

from gateway.bus.control import DEVICE_DELETED, DEVICE_SAVED, Control
from gateway.devices.access import Access
from gateway.devices.registry import Registry
from gateway.errors import Forbidden, NotFound, Unprocessable
from gateway.store.devices import DeviceStore
from gateway.types import Action, Device, Principal


class Devices:
    def __init__(
        self, *, devices: DeviceStore, registry: Registry, control: Control, access: Access
    ) -> None:
        self.devices = devices
        self.registry = registry
        self.control = control
        self.access = access

    async def device_for(self, principal: Principal, device_id: str, action: Action) -> Device:
        """The device, when the principal holds ``action`` and reaches it; else 403/404."""
        return await self.access.device_for(principal, device_id, action)

    async def list_devices(
        self, principal: Principal, limit: int = 1000, after: str = ""
    ) -> list[Device]:
        self.access.require(principal, Action.GetDevice)
        visible = await self.access.visible_networks(principal)
        return await self.devices.devices(
            visible,
            limit,
            after,
            only=principal.scope.device_ids,
            device_types=self.access.type_limits(principal),
        )

    async def find_devices(
        self,
        principal: Principal,
        *,
        network_id: int | None = None,
        name: str | None = None,
        by_name: bool = False,
        descending: bool = False,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[Device]:
        """DeviceHive's device/list: the devices the caller may see, filtered, sorted and
        paged by PostgreSQL (however many there are)."""
        self.access.require(principal, Action.GetDevice)
        visible = await self.access.visible_networks(principal)
        return await self.devices.device_page(
            visible,
            only=principal.scope.device_ids,
            device_types=self.access.type_limits(principal),
            network_id=network_id,
            name=name,
            by_name=by_name,
            descending=descending,
            limit=limit,
            offset=offset,
        )

    async def save_device(
        self, principal: Principal, device_id: str, fields: dict[str, Any]
    ) -> tuple[Device, bool]:
        """Create or update (RegisterDevice); returns the device and whether it is new.

        Decided on the device as PostgreSQL holds it, locked: not on the cache, which another
        instance's change may not have reached yet."""
        self.access.require(principal, Action.RegisterDevice)
        memberships = await self.access.memberships(principal)
        limits = self.access.type_limits(principal)

        def decide(existing: Device | None) -> Device:
            if existing is not None:
                self.access.check_device(principal, existing, memberships)
            network_id = fields.get("networkId", existing.network_id if existing else None)
            if network_id is None:
                if principal.is_admin or len(memberships) != 1:
                    raise Unprocessable("device.networkId: missing field")
                network_id = next(iter(memberships))
            device = Device(
                id=device_id,
                name=fields.get("name", existing.name if existing else device_id),
                data=fields.get("data", existing.data if existing else None),
                network_id=network_id,
                device_type_id=fields.get(
                    "deviceTypeId", existing.device_type_id if existing else None
                ),
                is_blocked=fields.get("isBlocked", existing.is_blocked if existing else False),
            )
            if not principal.may_reach(device.id, device.network_id, memberships):
                raise Forbidden(f"Network {device.network_id} is outside the token's scope")
            if limits is not None and device.device_type_id not in (None, *limits):
                raise Forbidden(
                    f"Device type {device.device_type_id} is outside the user's device types"
                )
            return device

        saved, replaced = await self.devices.save_device_as(device_id, decide)
        self.control.publish(DEVICE_SAVED, device=saved.to_json())
        return saved, replaced is None

    async def delete_device(self, principal: Principal, device_id: str) -> None:
        """Decided on the device as PostgreSQL holds it, locked, as a save is."""
        self.access.require(principal, Action.RegisterDevice)
        memberships = await self.access.memberships(principal)

        def check(device: Device) -> None:
            self.access.check_device(principal, device, memberships)

        if not await self.devices.delete_device(device_id, check):
            raise NotFound(f"Device {device_id} not found")
        self.control.publish(DEVICE_DELETED, id=device_id)
