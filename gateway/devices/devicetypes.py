"""Device type use cases: who may read and change device types (GetDeviceType, ManageDeviceType).

The REST routes, the WebSocket actions and the DeviceHive dialect all come through here, so the
rules live in one place.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import Forbidden, NotFound
from gateway.store.devicetypes import DeviceType, DeviceTypeStore
from gateway.types import Action, Principal


def _require(principal: Principal, action: Action) -> None:
    if not principal.may(action):
        raise Forbidden(f"Missing permission: {action.name}")


class DeviceTypeService:
    def __init__(self, store: DeviceTypeStore) -> None:
        self.store = store

    async def create(self, principal: Principal, name: str, description: str | None) -> DeviceType:
        _require(principal, Action.ManageDeviceType)
        return await self.store.create(name, description)

    async def get(self, principal: Principal, device_type_id: int) -> DeviceType:
        _require(principal, Action.GetDeviceType)
        found = await self.store.get(device_type_id)
        if found is None:
            raise NotFound("Device type not found")
        return found

    async def find(self, principal: Principal, **filters: Any) -> list[DeviceType]:
        """``filters``: those of ``DeviceTypeStore.page`` (name, pattern, sort, paging)."""
        _require(principal, Action.GetDeviceType)
        return await self.store.page(**filters)

    async def update(
        self, principal: Principal, device_type_id: int, changes: dict[str, Any]
    ) -> DeviceType:
        _require(principal, Action.ManageDeviceType)
        updated = await self.store.update(device_type_id, changes)
        if updated is None:
            raise NotFound("Device type not found")
        return updated

    async def delete(self, principal: Principal, device_type_id: int) -> None:
        _require(principal, Action.ManageDeviceType)
        await self.store.delete(device_type_id)
