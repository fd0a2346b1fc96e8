"""Device, network and message use cases shared by the REST API and the WebSocket actions.

Every change is written to PostgreSQL, then announced on the control channel so every
instance's caches follow; every message is acknowledged at once, queued for a batched write and
published for fan-out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection
from typing import Any

from gateway.auth.permissions import Action, Principal
from gateway.bus.control import (
    DEVICE_DELETED,
    DEVICE_SAVED,
    MEMBERSHIP,
    NETWORK_CREATED,
    NETWORK_DELETED,
    Control,
)
from gateway.errors import Forbidden, NotFound, Unprocessable
from gateway.realtime.hub import Hub
from gateway.realtime.registry import Registry
from gateway.store.devices import Device, DeviceStore, Network
from gateway.store.messages import Command, MessageStore, Notification
from gateway.store.users import UserStore

REPLAY_LIMIT = 10_000

REMOTE_COMMAND_WAIT = 1.0
"""How long command/update looks for a command that another instance acknowledged but has not
written yet (it writes every persist interval): a device on instance A may answer a command
inserted on instance B within milliseconds."""


class DeviceService:
    def __init__(
        self,
        *,
        devices: DeviceStore,
        users: UserStore,
        messages: MessageStore,
        registry: Registry,
        hub: Hub,
        control: Control,
    ) -> None:
        self.devices = devices
        self.users = users
        self.messages = messages
        self.registry = registry
        self.hub = hub
        self.control = control

    # -- rights ----------------------------------------------------------------------------

    async def memberships(self, principal: Principal) -> frozenset[int]:
        if principal.is_admin:
            return frozenset()
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
        if not principal.may_reach(device.id, device.network_id, memberships):
            raise Forbidden(f"Device {device.id} is outside the token's scope")

    async def device_for(self, principal: Principal, device_id: str, action: Action) -> Device:
        """The device, when the principal holds ``action`` and reaches it; else 403/404."""
        self.require(principal, action)
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

    # -- networks --------------------------------------------------------------------------

    async def create_network(self, name: str, description: str | None) -> Network:
        network = await self.devices.create_network(name, description)
        self.control.publish(NETWORK_CREATED, id=network.id)
        return network

    async def networks(self, principal: Principal) -> list[Network]:
        return await self.devices.networks(await self.visible_networks(principal))

    async def network(self, principal: Principal, network_id: int) -> Network:
        visible = await self.visible_networks(principal)
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

    # -- devices ---------------------------------------------------------------------------

    async def list_devices(
        self, principal: Principal, limit: int = 1000, after: str = ""
    ) -> list[Device]:
        self.require(principal, Action.GetDevice)
        found = await self.devices.devices(await self.visible_networks(principal), limit, after)
        if principal.scope.device_ids is not None:
            found = [device for device in found if device.id in principal.scope.device_ids]
        return found

    async def save_device(
        self, principal: Principal, device_id: str, fields: dict[str, Any]
    ) -> tuple[Device, bool]:
        """Create or update (RegisterDevice); returns the device and whether it is new."""
        self.require(principal, Action.RegisterDevice)
        memberships = await self.memberships(principal)
        existing = await self.registry.fetch_device(device_id)
        if existing is not None:
            self.check_device(principal, existing, memberships)
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
        saved, _ = await self.devices.save_device(device)
        self.control.publish(DEVICE_SAVED, device=saved.to_json())
        return saved, existing is None

    async def delete_device(self, principal: Principal, device_id: str) -> None:
        await self.device_for(principal, device_id, Action.RegisterDevice)
        await self.devices.delete_device(device_id)
        self.control.publish(DEVICE_DELETED, id=device_id)

    # -- messages --------------------------------------------------------------------------

    async def insert_notification(
        self,
        principal: Principal,
        device_id: str,
        name: str,
        parameters: Any,
        timestamp: float | None,
    ) -> Notification:
        device = await self.device_for(principal, device_id, Action.CreateDeviceNotification)
        if device.is_blocked:
            raise Forbidden(f"Device {device_id} is blocked")
        notification = Notification(
            id=await self.messages.next_id(),
            device_id=device.id,
            network_id=device.network_id,
            device_type_id=device.device_type_id,
            notification=name,
            parameters=parameters,
            timestamp=time.time() if timestamp is None else timestamp,
        )
        self.messages.add_notification(notification)
        self.hub.publish(b"n", notification)
        return notification

    async def insert_command(
        self, principal: Principal, device_id: str, fields: dict[str, Any]
    ) -> Command:
        device = await self.device_for(principal, device_id, Action.CreateDeviceCommand)
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
        self.hub.publish(b"c", command)
        return command

    async def update_command(
        self, principal: Principal, device_id: str, command_id: int, fields: dict[str, Any]
    ) -> Command:
        device = await self.device_for(principal, device_id, Action.UpdateDeviceCommand)
        if device.is_blocked:
            raise Forbidden(f"Device {device_id} is blocked")
        command = await self._command(command_id)
        if command is None or command.device_id != device_id:
            raise NotFound(f"Command {command_id} not found for device {device_id}")
        updated = command.updated(
            fields.get("status", command.status), fields.get("result", command.result), time.time()
        )
        self.messages.put_command(updated)
        self.hub.publish(b"u", updated)
        return updated

    async def _command(self, command_id: int) -> Command | None:
        """Pending here or stored; else looked for again a bounded time, in case another
        instance acknowledged it a moment ago and its batch is not committed yet."""
        command = await self.messages.get_command(command_id)
        if command is not None or not self.control.bus.shared:
            return command
        deadline = time.monotonic() + REMOTE_COMMAND_WAIT
        while command is None and time.monotonic() < deadline:
            await asyncio.sleep(min(0.05, max(0.005, self.messages.interval / 2)))
            command = await self.messages.get_command(command_id)
        return command

    async def history(
        self,
        kind: str,
        since: float,
        *,
        device_ids: Collection[str] | None,
        network_ids: Collection[int] | None,
        names: Collection[str] | None,
    ) -> list[Notification | Command]:
        """Stored items newer than ``since``, pending ones included (not yet written).

        The caller's live subscription is in place already. On a cluster, an item another
        instance acknowledged just before it is neither delivered live nor written yet (it is,
        within that instance's persist interval): wait that long before reading, or a client
        reconnecting to another instance would miss it for good."""
        if self.control.bus.shared:
            await asyncio.sleep(2 * self.messages.interval)
        pending = self.messages.pending(kind)
        stored = await self.messages.since(
            kind,
            since,
            device_ids=device_ids,
            network_ids=network_ids,
            names=names,
            limit=REPLAY_LIMIT,
        )
        return _merge(stored, pending, since, device_ids, network_ids, names)


def _merge(
    stored: list[Notification | Command],
    pending: list[Notification | Command],
    since: float,
    device_ids: Collection[str] | None,
    network_ids: Collection[int] | None,
    names: Collection[str] | None,
) -> list[Notification | Command]:
    by_id = {item.id: item for item in stored}
    for item in pending:
        if (
            item.timestamp > since
            and (device_ids is None or item.device_id in device_ids)
            and (network_ids is None or item.network_id in network_ids)
            and (names is None or item.name in names)
        ):
            by_id.setdefault(item.id, item)
    return sorted(by_id.values(), key=lambda item: (item.timestamp, item.id))
