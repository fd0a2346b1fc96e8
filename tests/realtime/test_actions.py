"""Every action: allowed with exactly its permission, denied (403, session open) without it;
the reply shape of each."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from gateway.auth.permissions import CLIENT_ACTIONS
from tests.realtime.helpers import World, connect, rest

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


async def _command_id(world: World) -> int:
    admin = await connect(world.client, world.admin)
    body = await admin.ok("command/insert", deviceId="d1", command={"command": "reboot"})
    command_id: int = body["command"]["id"]
    return command_id


Fields = Callable[[World], Awaitable[dict[str, Any]]]


async def _no_fields(world: World) -> dict[str, Any]:
    return {}


async def _device_get(world: World) -> dict[str, Any]:
    return {"deviceId": "d1"}


async def _device_save(world: World) -> dict[str, Any]:
    return {"deviceId": "d9", "device": {"name": "nine", "networkId": world.n1}}


async def _notification_insert(world: World) -> dict[str, Any]:
    return {"deviceId": "d1", "notification": {"notification": "temp"}}


async def _command_insert(world: World) -> dict[str, Any]:
    return {"deviceId": "d1", "command": {"command": "reboot"}}


async def _command_update(world: World) -> dict[str, Any]:
    return {
        "deviceId": "d1",
        "commandId": await _command_id(world),
        "command": {"status": "done"},
    }


GUARDED: list[tuple[str, str, Fields]] = [
    ("device/get", "GetDevice", _device_get),
    ("device/list", "GetDevice", _no_fields),
    ("device/save", "RegisterDevice", _device_save),
    ("notification/insert", "CreateDeviceNotification", _notification_insert),
    ("notification/subscribe", "GetDeviceNotification", _device_get),
    ("command/insert", "CreateDeviceCommand", _command_insert),
    ("command/update", "UpdateDeviceCommand", _command_update),
    ("command/subscribe", "GetDeviceCommand", _device_get),
]


@pytest.mark.parametrize(("action", "permission", "fields"), GUARDED, ids=[g[0] for g in GUARDED])
async def test_action_needs_its_permission(
    world: World, action: str, permission: str, fields: Fields
) -> None:
    body = await fields(world)
    without = sorted(a.name for a in CLIENT_ACTIONS if a.name != permission)
    denied = await connect(world.client, await _mint(world, world.alice, actions=without))
    await denied.fails(action, 403, f"Missing permission: {permission}", **body)
    assert await denied.is_open()

    only = await connect(world.client, await _mint(world, world.alice, actions=[permission]))
    await only.ok(action, **body)


async def _mint(world: World, token: str, **body: Any) -> str:
    pair = await rest(world.client, "POST", "/v1/auth/token/create", token, 201, body)
    access: str = pair["access_token"]
    return access


async def test_actions_without_permission_need_only_a_token(world: World) -> None:
    peer = await connect(world.client, await _mint(world, world.alice, actions=[]))
    assert set((await peer.ok("server/info"))["info"]) == {
        "apiVersion",
        "serverTimestamp",
        "restServerUrl",
        "webSocketServerUrl",
    }
    assert await peer.ok("subscription/list") == {"subscriptions": []}
    assert await peer.ok("notification/unsubscribe") == {}
    assert await peer.ok("command/unsubscribe") == {}
    await peer.fails("device/list", 403, "Missing permission: GetDevice")

    anonymous = await connect(world.client)
    for action in ("subscription/list", "notification/unsubscribe", "command/unsubscribe"):
        await anonymous.fails(
            action, 401, "Not authenticated: send authenticate with an access token"
        )


async def test_scope_denies_every_device_action_outside_member_networks(world: World) -> None:
    """alice belongs to n1 only; d2 is in n2."""
    admin = await connect(world.client, world.admin)
    command_id = (await admin.ok("command/insert", deviceId="d2", command={"command": "reboot"}))[
        "command"
    ]["id"]
    peer = await connect(world.client, world.alice)
    outside = "Device d2 is outside the token's scope"
    await peer.fails("device/get", 403, outside, deviceId="d2")
    await peer.fails("device/save", 403, outside, deviceId="d2", device={"name": "mine"})
    await peer.fails(
        "device/save",
        403,
        f"Network {world.n2} is outside the token's scope",
        deviceId="d9",
        device={"name": "nine", "networkId": world.n2},
    )
    await peer.fails(
        "notification/insert", 403, outside, deviceId="d2", notification={"notification": "x"}
    )
    await peer.fails("notification/subscribe", 403, outside, deviceId="d2")
    await peer.fails(
        "notification/subscribe",
        403,
        f"networkIds outside the token's scope: {world.n2}",
        networkIds=[world.n1, world.n2],
    )
    await peer.fails("command/insert", 403, outside, deviceId="d2", command={"command": "x"})
    await peer.fails(
        "command/update",
        403,
        outside,
        deviceId="d2",
        commandId=command_id,
        command={"status": "done"},
    )
    await peer.fails("command/subscribe", 403, outside, deviceId="d2")
    await peer.fails(
        "command/subscribe",
        403,
        f"networkIds outside the token's scope: {world.n2}",
        networkIds=[world.n2],
    )
    assert [d["id"] for d in (await peer.ok("device/list"))["devices"]] == ["d1", "d3"]
    assert await peer.is_open()


async def test_device_get_and_list(world: World) -> None:
    peer = await connect(world.client, world.admin)
    assert await peer.ok("device/get", deviceId="d2") == {
        "device": {
            "id": "d2",
            "name": "d2",
            "data": None,
            "networkId": world.n2,
            "deviceTypeId": 2,
            "isBlocked": False,
        }
    }
    await peer.fails("device/get", 404, "Device nope not found", deviceId="nope")
    await peer.fails("device/get", 400, "deviceId: must match [A-Za-z0-9_-]{1,64}", deviceId="a b")
    listed = await peer.ok("device/list")
    assert [d["id"] for d in listed["devices"]] == ["d1", "d2", "d3"]
    assert listed["devices"][2] == {
        "id": "d3",
        "name": "d3",
        "data": None,
        "networkId": world.n1,
        "deviceTypeId": None,
        "isBlocked": False,
    }
    by_network = await peer.ok("device/list", networkId=world.n1)
    assert [d["id"] for d in by_network["devices"]] == ["d1", "d3"]
    paged = await peer.ok("device/list", skip=1, take=1)
    assert [d["id"] for d in paged["devices"]] == ["d2"]


async def test_device_save_creates_and_updates(world: World) -> None:
    peer = await connect(world.client, world.alice)
    assert (
        await peer.ok(
            "device/save",
            deviceId="sensor-9",
            device={"name": "Sensor nine", "data": {"fw": 1}, "deviceTypeId": 1},
        )
        == {}
    )
    # alice belongs to one network only, so networkId defaults to it.
    expected = {
        "id": "sensor-9",
        "name": "Sensor nine",
        "data": {"fw": 1},
        "networkId": world.n1,
        "deviceTypeId": 1,
        "isBlocked": False,
    }
    assert await peer.ok("device/get", deviceId="sensor-9") == {"device": expected}
    assert await rest(world.client, "GET", "/v1/devices/sensor-9", world.admin, 200) == expected
    # An update changes the given fields only.
    assert await peer.ok("device/save", deviceId="sensor-9", device={"isBlocked": True}) == {}
    assert await peer.ok("device/get", deviceId="sensor-9") == {
        "device": {**expected, "isBlocked": True}
    }
    await peer.fails(
        "notification/insert",
        403,
        "Device sensor-9 is blocked",
        deviceId="sensor-9",
        notification={"notification": "temp"},
    )
    await peer.fails("device/save", 400, "body: missing field: device", deviceId="x")


async def test_notification_insert_reply(world: World) -> None:
    peer = await connect(world.client, world.alice)
    body = await peer.ok(
        "notification/insert",
        deviceId="d1",
        notification={"notification": "temp", "parameters": {"c": 21.5}},
    )
    assert set(body) == {"notification"}
    assert set(body["notification"]) == {"id", "timestamp"}
    assert isinstance(body["notification"]["id"], int)
    assert TIMESTAMP.fullmatch(body["notification"]["timestamp"])
    # A client-supplied timestamp is kept (normalized to UTC with milliseconds).
    given = await peer.ok(
        "notification/insert",
        deviceId="d1",
        notification={"notification": "temp", "timestamp": "2026-01-02T03:04:05.678+02:00"},
    )
    assert given["notification"]["timestamp"] == "2026-01-02T01:04:05.678Z"
    assert given["notification"]["id"] > body["notification"]["id"]
    await peer.fails(
        "notification/insert",
        422,
        "notification.timestamp: not an ISO-8601 timestamp: 'yesterday'",
        deviceId="d1",
        notification={"notification": "temp", "timestamp": "yesterday"},
    )
    await peer.fails(
        "notification/insert",
        400,
        "notification: missing field: notification",
        deviceId="d1",
        notification={"parameters": {}},
    )
    await peer.fails(
        "notification/insert",
        404,
        "Device ghost not found",
        deviceId="ghost",
        notification={"notification": "temp"},
    )


async def test_command_insert_reply(world: World) -> None:
    peer = await connect(world.client, world.alice)
    body = await peer.ok(
        "command/insert", deviceId="d1", command={"command": "reboot", "parameters": {"in": 5}}
    )
    assert set(body) == {"command"}
    command = body["command"]
    assert set(command) == {"id", "timestamp", "lastUpdated", "userId"}
    assert command["userId"] == world.alice_id
    assert isinstance(command["id"], int)
    assert TIMESTAMP.fullmatch(command["timestamp"])
    assert command["lastUpdated"] == command["timestamp"]


async def test_command_update_reply_and_errors(world: World) -> None:
    peer = await connect(world.client, world.alice)
    command_id = (await peer.ok("command/insert", deviceId="d1", command={"command": "reboot"}))[
        "command"
    ]["id"]
    assert (
        await peer.ok(
            "command/update",
            deviceId="d1",
            commandId=command_id,
            command={"status": "done", "result": {"ok": True}},
        )
        == {}
    )
    await peer.fails(
        "command/update",
        404,
        f"Command {command_id} not found for device d3",
        deviceId="d3",
        commandId=command_id,
        command={"status": "done"},
    )
    await peer.fails(
        "command/update",
        404,
        "Command 999999 not found for device d1",
        deviceId="d1",
        commandId=999999,
        command={"status": "done"},
    )
