"""Who may list and read users, networks and configuration properties, DeviceHive's way.

The WebSocket actions and the DeviceHive REST dialect come through here; /v1 keeps its own
routes over the same stores and the same rules (ManageUser, GetNetwork and the caller's
visible networks, ManageConfiguration).
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from gateway.errors import Forbidden, NotFound, Unprocessable
from gateway.store.catalog import CatalogStore, Property
from gateway.store.devices import DeviceStore
from gateway.store.devicetypes import DeviceTypeStore, TypeAccess
from gateway.store.users import UserStore
from gateway.types import Action, Device, Network, Principal, User

PROPERTY_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")
MAX_PROPERTY_VALUE = 4096


class NetworkAccess(Protocol):
    async def visible_networks(self, principal: Principal) -> frozenset[int] | None:
        """The networks a principal may see (None: all)."""


def require(principal: Principal, action: Action) -> None:
    if not principal.may(action):
        raise Forbidden(f"Missing permission: {action.name}")


class CatalogService:
    def __init__(
        self,
        store: CatalogStore,
        users: UserStore,
        devices: DeviceStore,
        device_types: DeviceTypeStore,
        networks: NetworkAccess,
    ) -> None:
        self.store = store
        self.users = users
        self.devices = devices
        self.device_types = device_types
        self.networks = networks

    # -- users -----------------------------------------------------------------------------

    async def current_user(self, principal: Principal) -> tuple[User, TypeAccess]:
        require(principal, Action.GetCurrentUser)
        return await self._user(principal.user_id)

    async def user(self, principal: Principal, user_id: int) -> tuple[User, TypeAccess]:
        """ManageUser, or oneself with GetCurrentUser (as GET /v1/users/{id})."""
        if not principal.may(Action.ManageUser):
            if principal.user_id != user_id:
                raise Forbidden("Missing permission: ManageUser")
            require(principal, Action.GetCurrentUser)
        return await self._user(user_id)

    async def _user(self, user_id: int) -> tuple[User, TypeAccess]:
        user = await self.users.get(user_id)
        access = await self.device_types.access(user_id)
        if user is None or access is None:
            raise NotFound("User not found")
        return user, access

    async def user_list(
        self, principal: Principal, **filters: Any
    ) -> list[tuple[User, TypeAccess]]:
        require(principal, Action.ManageUser)
        users = await self.store.users(**filters)
        found = []
        for user in users:
            access = await self.device_types.access(user.id)
            if access is not None:
                found.append((user, access))
        return found

    # -- networks --------------------------------------------------------------------------

    async def network_list(self, principal: Principal, **filters: Any) -> list[Network]:
        require(principal, Action.GetNetwork)
        only = await self.networks.visible_networks(principal)
        return await self.store.networks(only=only, **filters)

    async def network(self, principal: Principal, network_id: int) -> tuple[Network, list[Device]]:
        """The network and, with GetDevice, its devices within the token's device scope."""
        require(principal, Action.GetNetwork)
        network = await self.devices.get_network(network_id)
        if network is None:
            raise NotFound("Network not found")
        visible = await self.networks.visible_networks(principal)
        if visible is not None and network_id not in visible:
            raise Forbidden(f"Network {network_id} is outside the token's scope")
        if not principal.may(Action.GetDevice):
            return network, []
        limits = None
        if not principal.is_admin:
            limits = (await self.device_types.limits_of([principal.user_id])).get(principal.user_id)
        # Filtered before the limit: a narrowed token sees its devices however many others.
        return network, await self.devices.devices(
            [network_id], limit=10_000, only=principal.scope.device_ids, device_types=limits
        )

    # -- configuration ---------------------------------------------------------------------

    async def get_property(self, principal: Principal, name: str) -> Property:
        require(principal, Action.ManageConfiguration)
        found = await self.store.get_property(_property_name(name))
        if found is None:
            raise NotFound(f"Configuration property {name} not found")
        return found

    async def put_property(self, principal: Principal, name: str, value: str) -> Property:
        require(principal, Action.ManageConfiguration)
        if len(value) > MAX_PROPERTY_VALUE:
            raise Unprocessable(f"value: must be at most {MAX_PROPERTY_VALUE} characters")
        return await self.store.put_property(_property_name(name), value)

    async def delete_property(self, principal: Principal, name: str) -> None:
        require(principal, Action.ManageConfiguration)
        if not await self.store.delete_property(_property_name(name)):
            raise NotFound(f"Configuration property {name} not found")


def _property_name(name: str) -> str:
    if not PROPERTY_NAME.fullmatch(name):
        raise Unprocessable("name: must match [A-Za-z0-9._-]{1,128}")
    return name
