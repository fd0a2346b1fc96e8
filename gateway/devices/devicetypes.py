"""Device type use cases: who may read and change device types (GetDeviceType, ManageDeviceType).

The REST routes, the WebSocket actions and the DeviceHive dialect all come through here, so the
rules live in one place.
"""

from __future__ import annotations

from typing import Any

from gateway.bus.control import TYPE_ACCESS, Control
from gateway.errors import Forbidden, NotFound
from gateway.store.devicetypes import DeviceType, DeviceTypeStore, TypeAccess
from gateway.types import Action, Principal


def _require(principal: Principal, action: Action) -> None:
    if not principal.may(action):
        raise Forbidden(f"Missing permission: {action.name}")


class DeviceTypeService:
    def __init__(self, store: DeviceTypeStore, control: Control) -> None:
        self.store = store
        self.control = control

    async def limits(self, principal: Principal) -> frozenset[int] | None:
        """The device types the caller may see (None: all): an admin sees all, a client what
        their access says (read from PostgreSQL: device type reads are not the hot path)."""
        if principal.is_admin:
            return None
        return (await self.store.limits_of([principal.user_id])).get(principal.user_id)

    async def create(self, principal: Principal, name: str, description: str | None) -> DeviceType:
        _require(principal, Action.ManageDeviceType)
        return await self.store.create(name, description)

    async def get(self, principal: Principal, device_type_id: int) -> DeviceType:
        _require(principal, Action.GetDeviceType)
        found = await self.store.get(device_type_id)
        if found is None:
            raise NotFound("Device type not found")
        limits = await self.limits(principal)
        if limits is not None and device_type_id not in limits:
            raise Forbidden(f"Device type {device_type_id} is outside the user's device types")
        return found

    async def find(self, principal: Principal, **filters: Any) -> list[DeviceType]:
        """``filters``: those of ``DeviceTypeStore.page`` (name, pattern, sort, paging)."""
        _require(principal, Action.GetDeviceType)
        return await self.store.page(only=await self.limits(principal), **filters)

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

    # -- user access -----------------------------------------------------------------------

    async def access_of(self, principal: Principal, user_id: int) -> TypeAccess:
        """ManageUser, or one's own (with GetCurrentUser)."""
        if not principal.may(Action.ManageUser):
            if principal.user_id != user_id:
                raise Forbidden("Missing permission: ManageUser")
            _require(principal, Action.GetCurrentUser)
        found = await self.store.access(user_id)
        if found is None:
            raise NotFound("User not found")
        return found

    async def set_access(
        self, principal: Principal, user_id: int, all_types: bool, device_type_ids: list[int]
    ) -> TypeAccess:
        """Replace a user's device type access; live sessions follow at once (control event)."""
        _require(principal, Action.ManageUser)
        saved = await self.store.set_access(user_id, all_types, device_type_ids)
        if saved is None:
            raise NotFound("User not found")
        self.control.publish(
            TYPE_ACCESS,
            user_id=user_id,
            deviceTypeIds=None if saved.all else sorted(saved.ids),
        )
        return saved
