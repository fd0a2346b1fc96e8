"""Networks and memberships: create, read, change, delete, join and leave.

Every change is written to PostgreSQL, then announced on the control channel so that every
instance's caches (and the live subscriptions that follow them) change at once.
"""

from __future__ import annotations

from typing import Any

from gateway.bus.control import MEMBERSHIP, NETWORK_CREATED, NETWORK_DELETED, Control
from gateway.devices.access import Access
from gateway.errors import Forbidden, NotFound
from gateway.store.devices import DeviceStore
from gateway.store.users import UserStore
from gateway.types import Network, Principal


class Networks:
    def __init__(
        self, *, devices: DeviceStore, users: UserStore, control: Control, access: Access
    ) -> None:
        self.devices = devices
        self.users = users
        self.control = control
        self.access = access

    async def create_network(self, name: str, description: str | None) -> Network:
        network = await self.devices.create_network(name, description)
        self.control.publish(NETWORK_CREATED, id=network.id)
        return network

    async def networks(self, principal: Principal) -> list[Network]:
        return await self.devices.networks(await self.access.visible_networks(principal))

    async def network(self, principal: Principal, network_id: int) -> Network:
        visible = await self.access.visible_networks(principal)
        network = await self.devices.get_network(network_id)
        if network is None:
            raise NotFound("Network not found")
        if visible is not None and network_id not in visible:
            raise Forbidden(f"Network {network_id} is outside the token's scope")
        return network

    async def update_network(self, network_id: int, changes: dict[str, Any]) -> Network:
        network = await self.devices.update_network(network_id, changes)
        if network is None:
            raise NotFound("Network not found")
        return network

    async def delete_network(self, network_id: int) -> None:
        device_ids = await self.devices.delete_network(network_id)
        if device_ids is None:
            raise NotFound("Network not found")
        self.control.publish(NETWORK_DELETED, id=network_id, device_ids=device_ids)

    async def set_membership(self, user_id: int, network_id: int, member: bool) -> None:
        if await self.users.get(user_id) is None:
            raise NotFound("User not found")
        if await self.devices.get_network(network_id) is None:
            raise NotFound("Network not found")
        if member:
            await self.users.add_network(user_id, network_id)
        elif not await self.users.remove_network(user_id, network_id):
            raise NotFound("The user is not a member of that network")
        networks = await self.users.network_ids(user_id)
        self.control.publish(MEMBERSHIP, user_id=user_id, network_ids=sorted(networks))
