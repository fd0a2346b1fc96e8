"""Who may reach which device and network: the checks every device use case starts with.

They read the registry's caches (a bit test and a few dict look-ups), loading a user's
memberships from PostgreSQL only the first time they are needed on this instance.
"""

from __future__ import annotations

from gateway.devices.registry import Registry
from gateway.errors import Forbidden, NotFound
from gateway.types import Action, Command, Device, Notification, Principal

_NO_MEMBERSHIPS: frozenset[int] = frozenset()
"""An admin's: an admin reaches every network without being a member of any."""


class Access:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def memberships(self, principal: Principal) -> frozenset[int]:
        if principal.is_admin:
            return _NO_MEMBERSHIPS
        known = self.registry.known_memberships(principal.user_id)
        if known is not None:
            return known
        return await self.registry.load_memberships(principal.user_id)

    def require(self, principal: Principal, action: Action) -> None:
        if not principal.may(action):
            raise Forbidden(f"Missing permission: {action.name}")

    def check_device(
        self, principal: Principal, device: Device, memberships: frozenset[int]
    ) -> None:
        if not principal.may_reach(device.id, device.network_id, memberships) or not (
            principal.is_admin
            or self.registry.type_allowed(principal.user_id, device.device_type_id)
        ):
            raise Forbidden(f"Device {device.id} is outside the token's scope")

    async def reaches(self, principal: Principal, item: Notification | Command) -> bool:
        """Whether the principal reaches a stored item in the network it was sent in, which
        may not be its device's now (the device moved, or its id was registered again)."""
        return principal.may_reach(
            item.device_id, item.network_id, await self.memberships(principal)
        ) and (
            principal.is_admin or self.registry.type_allowed(principal.user_id, item.device_type_id)
        )

    def type_limits(self, principal: Principal) -> frozenset[int] | None:
        """The device types a client may reach, when not all (after ``memberships``)."""
        return None if principal.is_admin else self.registry.type_limits(principal.user_id)

    def known_device_for(
        self, principal: Principal, device_id: str, action: Action
    ) -> Device | None:
        """``device_for`` from the caches alone, so the hot path needs no coroutine: None when
        the device or the principal's memberships are not cached yet."""
        self.require(principal, action)
        registry = self.registry
        device = registry.device(device_id)
        if device is None:
            return None
        memberships = (
            _NO_MEMBERSHIPS if principal.is_admin else registry.known_memberships(principal.user_id)
        )
        if memberships is None:
            return None
        self.check_device(principal, device, memberships)
        return device

    async def device_for(self, principal: Principal, device_id: str, action: Action) -> Device:
        """The device, when the principal holds ``action`` and reaches it; else 403/404."""
        device = self.known_device_for(principal, device_id, action)
        if device is not None:
            return device
        device = self.registry.device(device_id) or await self.registry.fetch_device(device_id)
        if device is None:
            raise NotFound(f"Device {device_id} not found")
        self.check_device(principal, device, await self.memberships(principal))
        return device

    async def visible_networks(self, principal: Principal) -> frozenset[int] | None:
        """The networks a principal may see (None: all)."""
        networks = None if principal.is_admin else await self.memberships(principal)
        if principal.scope.network_ids is not None:
            networks = (
                principal.scope.network_ids
                if networks is None
                else networks & principal.scope.network_ids
            )
        return networks
