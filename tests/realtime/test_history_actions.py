"""WebSocket notification/list, notification/get, command/list, command/get and device/delete in
DeviceHive's shapes: each succeeds with its permission and is refused without it or outside its
scope."""

from __future__ import annotations

from typing import Any

import pytest

from tests.realtime.helpers import Peer, World, connect, insert_notifications, mint

STAMPS = [f"2026-11-30T10:00:0{i}.000Z" for i in range(4)]


async def _notifications(peer: Peer) -> list[dict[str, Any]]:
    """Four notifications of d1 at known times (names a, b, a, b), as the history shows them."""
    return await insert_notifications(
        peer, [(stamp, "ab"[i % 2]) for i, stamp in enumerate(STAMPS)]
    )


async def test_notification_list(world: World) -> None:
    items = await _notifications(await connect(world.client, world.admin))
    alice = await connect(world.client, world.alice)
    assert await alice.ok("notification/list", deviceId="d1") == {"notifications": items}
    assert await alice.ok("notification/list", deviceId="d1", start=STAMPS[1], end=STAMPS[2]) == {
        "notifications": items[1:3]
    }
    assert await alice.ok("notification/list", deviceId="d1", notification="b") == {
        "notifications": [items[1], items[3]]
    }
    assert await alice.ok("notification/list", deviceId="d1", sortOrder="DESC", take=2, skip=1) == {
        "notifications": [items[2], items[1]]
    }
    assert await alice.ok(
        "notification/list", deviceId="d1", sortField="notification", sortOrder="DESC"
    ) == {"notifications": [items[3], items[1], items[2], items[0]]}
    assert await alice.ok("notification/list", deviceId="d3") == {"notifications": []}
    await alice.fails(
        "notification/list", 403, "Device d2 is outside the token's scope", deviceId="d2"
    )
    await alice.fails("notification/list", 404, "Device nope not found", deviceId="nope")
    no_rights = await connect(
        world.client, await mint(world.client, world.alice, actions=["GetDeviceCommand"])
    )
    await no_rights.fails(
        "notification/list", 403, "Missing permission: GetDeviceNotification", deviceId="d1"
    )


async def test_notification_get(world: World) -> None:
    items = await _notifications(await connect(world.client, world.admin))
    alice = await connect(world.client, world.alice)
    assert await alice.ok("notification/get", deviceId="d1", notificationId=items[2]["id"]) == {
        "notification": items[2]
    }
    await alice.fails(
        "notification/get",
        404,
        f"Notification {items[2]['id']} not found for device d3",
        deviceId="d3",
        notificationId=items[2]["id"],
    )
    bob = await connect(world.client, world.bob)
    await bob.fails(
        "notification/get",
        403,
        "Device d1 is outside the token's scope",
        deviceId="d1",
        notificationId=items[0]["id"],
    )
    no_rights = await connect(
        world.client, await mint(world.client, world.alice, actions=["GetDeviceCommand"])
    )
    await no_rights.fails(
        "notification/get",
        403,
        "Missing permission: GetDeviceNotification",
        deviceId="d1",
        notificationId=items[0]["id"],
    )


async def test_command_list_and_get(world: World) -> None:
    admin = await connect(world.client, world.admin)
    ids = []
    for name in ("on", "off"):
        body = await admin.ok("command/insert", deviceId="d2", command={"command": name})
        ids.append(body["command"]["id"])
    await admin.ok(
        "command/update", deviceId="d2", commandId=ids[1], command={"status": "done", "result": 7}
    )
    bob = await connect(world.client, world.bob)
    listed = (await bob.ok("command/list", deviceId="d2"))["commands"]
    assert [(c["id"], c["command"], c["status"], c["result"]) for c in listed] == [
        (ids[0], "on", None, None),
        (ids[1], "off", "done", 7),
    ]
    assert [
        c["id"] for c in (await bob.ok("command/list", deviceId="d2", status="done"))["commands"]
    ] == [ids[1]]
    assert [
        c["id"] for c in (await bob.ok("command/list", deviceId="d2", command="on"))["commands"]
    ] == [ids[0]]
    assert await bob.ok("command/get", deviceId="d2", commandId=ids[1]) == {"command": listed[1]}
    await bob.fails(
        "command/get", 404, "Command 999 not found for device d2", deviceId="d2", commandId=999
    )
    alice = await connect(world.client, world.alice)
    await alice.fails("command/list", 403, "Device d2 is outside the token's scope", deviceId="d2")
    await alice.fails(
        "command/get",
        403,
        "Device d2 is outside the token's scope",
        deviceId="d2",
        commandId=ids[0],
    )
    no_rights = await connect(
        world.client, await mint(world.client, world.bob, actions=["GetDeviceNotification"])
    )
    await no_rights.fails(
        "command/list", 403, "Missing permission: GetDeviceCommand", deviceId="d2"
    )
    await no_rights.fails(
        "command/get", 403, "Missing permission: GetDeviceCommand", deviceId="d2", commandId=ids[0]
    )


async def test_device_delete(world: World) -> None:
    alice = await connect(world.client, world.alice)
    await alice.fails("device/delete", 403, "Device d2 is outside the token's scope", deviceId="d2")
    no_rights = await connect(
        world.client, await mint(world.client, world.alice, actions=["GetDevice"])
    )
    await no_rights.fails("device/delete", 403, "Missing permission: RegisterDevice", deviceId="d3")
    assert await alice.ok("device/delete", deviceId="d3") == {}
    await alice.fails("device/get", 404, "Device d3 not found", deviceId="d3")
    await alice.fails("device/delete", 404, "Device d3 not found", deviceId="d3")


@pytest.mark.parametrize(
    ("action", "fields", "error"),
    [
        ("notification/list", {}, "body: missing field: deviceId"),
        ("notification/list", {"deviceId": "d1", "take": 0}, "take: must be at least 1"),
        ("notification/list", {"deviceId": "d1", "take": 1001}, "take: must be at most 1000"),
        ("notification/list", {"deviceId": "d1", "skip": 10_001}, "skip: must be at most 10000"),
        (
            "notification/list",
            {"deviceId": "d1", "sortField": "parameters"},
            "sortField: must be one of timestamp, notification",
        ),
        (
            "command/list",
            {"deviceId": "d1", "sortField": "notification"},
            "sortField: must be one of timestamp, command",
        ),
        (
            "notification/list",
            {"deviceId": "d1", "sortOrder": "asc"},
            "sortOrder: must be one of ASC, DESC",
        ),
        (
            "notification/list",
            {"deviceId": "d1", "start": "noon"},
            "start: not an ISO-8601 timestamp: 'noon'",
        ),
        (
            "notification/list",
            {"deviceId": "d1", "start": STAMPS[2], "end": STAMPS[1]},
            "end: must not be before start",
        ),
        (
            "notification/list",
            {"deviceId": "d1", "notification": "x" * 257},
            "notification: must be at most 256 characters",
        ),
        ("command/list", {"deviceId": "d1", "status": 5}, "status: must be a string"),
        (
            "notification/get",
            {"deviceId": "d1", "notificationId": 0},
            "notificationId: must be at least 1",
        ),
        ("command/get", {"deviceId": "d1", "commandId": "1"}, "commandId: must be an integer"),
        ("device/delete", {"deviceId": "../etc"}, "deviceId: must match [A-Za-z0-9_-]{1,64}"),
    ],
)
async def test_hostile_requests_get_precise_errors(
    world: World, action: str, fields: dict[str, Any], error: str
) -> None:
    admin = await connect(world.client, world.admin)
    request_id = await admin.send(action, **fields)
    reply = await admin.reply(request_id)
    assert reply["status"] == "error" and reply["error"] == error, reply
    assert reply["code"] in (400, 422)
    assert await admin.is_open()
