"""Subscriptions: exact push shapes, filters, fan-out, unsubscribe and listing."""

from __future__ import annotations

from typing import Any

from tests.realtime.helpers import (
    World,
    connect,
    create_network,
    insert,
    notification_push,
    put_device,
    rest,
)


async def test_notification_push_has_every_field(world: World) -> None:
    subscriber = await connect(world.client, world.alice)
    sub = await subscriber.subscribe(networkIds=[world.n1])
    publisher = await connect(world.client, world.admin)
    with_params = await insert(publisher, "d1", "temp", {"c": 21.5, "ok": [1, None]})
    bare = await insert(publisher, "d3", "door")
    assert await subscriber.push() == notification_push(
        sub,
        with_params["id"],
        with_params["timestamp"],
        device_id="d1",
        network_id=world.n1,
        device_type_id=1,
        name="temp",
        parameters={"c": 21.5, "ok": [1, None]},
    )
    # No parameters and no device type: the fields are there, as nulls.
    assert await subscriber.push() == notification_push(
        sub,
        bare["id"],
        bare["timestamp"],
        device_id="d3",
        network_id=world.n1,
        device_type_id=None,
        name="door",
        parameters=None,
    )


async def test_command_insert_and_update_pushes(world: World) -> None:
    plain = await connect(world.client, world.alice)
    plain_sub = await plain.subscribe("command", deviceId="d1")
    updates = await connect(world.client, world.alice)
    updates_sub = await updates.subscribe("command", deviceId="d1", returnUpdatedCommands=True)
    sender = await connect(world.client, world.admin)
    reply = (
        await sender.ok(
            "command/insert",
            deviceId="d1",
            command={"command": "reboot", "parameters": {"delay": 5}, "lifetime": 60},
        )
    )["command"]
    inserted = {
        "id": reply["id"],
        "deviceId": "d1",
        "networkId": world.n1,
        "deviceTypeId": 1,
        "userId": reply["userId"],
        "command": "reboot",
        "parameters": {"delay": 5},
        "lifetime": 60,
        "timestamp": reply["timestamp"],
        "lastUpdated": reply["lastUpdated"],
        "status": None,
        "result": None,
    }
    assert await plain.push() == {
        "action": "command/insert",
        "subscriptionId": plain_sub,
        "command": inserted,
    }
    assert await updates.push() == {
        "action": "command/insert",
        "subscriptionId": updates_sub,
        "command": inserted,
    }
    device = await connect(world.client, world.alice)
    await device.ok(
        "command/update",
        deviceId="d1",
        commandId=reply["id"],
        command={"status": "done", "result": {"uptime": 3}},
    )
    update = await updates.push()
    assert update == {
        "action": "command/update",
        "subscriptionId": updates_sub,
        "command": {
            **inserted,
            "status": "done",
            "result": {"uptime": 3},
            "lastUpdated": update["command"]["lastUpdated"],
        },
    }
    assert update["command"]["lastUpdated"] >= inserted["lastUpdated"]
    # Without returnUpdatedCommands, no update push.
    await plain.no_push()


async def test_command_status_and_result_given_at_insert(world: World) -> None:
    subscriber = await connect(world.client, world.admin)
    sub = await subscriber.subscribe("command", names=["ping"])
    reply = (
        await subscriber.ok(
            "command/insert",
            deviceId="d3",
            command={"command": "ping", "status": "queued", "result": [1]},
        )
    )["command"]
    push = await subscriber.push()
    assert push["subscriptionId"] == sub
    assert push["command"] == {
        "id": reply["id"],
        "deviceId": "d3",
        "networkId": world.n1,
        "deviceTypeId": None,
        "userId": reply["userId"],
        "command": "ping",
        "parameters": None,
        "lifetime": None,
        "timestamp": reply["timestamp"],
        "lastUpdated": reply["lastUpdated"],
        "status": "queued",
        "result": [1],
    }


async def _names_received(peer: Any, count: int) -> list[tuple[str, str]]:
    return [
        (p["notification"]["deviceId"], p["notification"]["notification"])
        for p in await peer.pushes_n(count)
    ]


async def test_filters(world: World) -> None:
    admin = await connect(world.client, world.admin)
    by_device = await connect(world.client, world.admin)
    await by_device.subscribe(deviceId="d1")
    by_network = await connect(world.client, world.admin)
    await by_network.subscribe(networkIds=[world.n2])
    by_type = await connect(world.client, world.admin)
    await by_type.subscribe(deviceTypeIds=[1, 2])
    by_name = await connect(world.client, world.admin)
    await by_name.subscribe(names=["alarm"])
    combined = await connect(world.client, world.admin)
    await combined.subscribe(networkIds=[world.n1], names=["alarm", "door"])
    everything = await connect(world.client, world.admin)
    await everything.subscribe()

    sent = [("d1", "temp"), ("d2", "temp"), ("d3", "alarm"), ("d1", "alarm"), ("d3", "door")]
    for device_id, name in sent:
        await insert(admin, device_id, name)

    assert await _names_received(by_device, 2) == [("d1", "temp"), ("d1", "alarm")]
    assert await _names_received(by_network, 1) == [("d2", "temp")]
    assert await _names_received(by_type, 3) == [("d1", "temp"), ("d2", "temp"), ("d1", "alarm")]
    assert await _names_received(by_name, 2) == [("d3", "alarm"), ("d1", "alarm")]
    assert await _names_received(combined, 3) == [("d3", "alarm"), ("d1", "alarm"), ("d3", "door")]
    assert await _names_received(everything, 5) == sent
    for peer in (by_device, by_network, by_type, by_name, combined, everything):
        await peer.no_push(0.1)


async def test_client_unfiltered_subscription_sees_member_networks_only(world: World) -> None:
    alice = await connect(world.client, world.alice)
    await alice.subscribe()
    admin = await connect(world.client, world.admin)
    for device_id in ("d2", "d1", "d3"):
        await insert(admin, device_id, "temp")
    assert await _names_received(alice, 2) == [("d1", "temp"), ("d3", "temp")]
    await alice.no_push()


async def test_subscription_covers_devices_created_after_it(world: World) -> None:
    by_network = await connect(world.client, world.alice)
    await by_network.subscribe(networkIds=[world.n1])
    by_type = await connect(world.client, world.alice)
    await by_type.subscribe(deviceTypeIds=[3])  # a device type that does not exist yet
    await rest(world.client, "POST", "/v1/device-types", world.admin, 201, {"name": "pump"})
    await put_device(world.client, world.admin, "late", world.n1, 3)
    admin = await connect(world.client, world.admin)
    await insert(admin, "late", "hello")
    assert await _names_received(by_network, 1) == [("late", "hello")]
    assert await _names_received(by_type, 1) == [("late", "hello")]


async def test_admin_subscription_covers_networks_created_after_it(world: World) -> None:
    admin = await connect(world.client, world.admin)
    sub = await admin.subscribe()
    command_sub = await admin.subscribe("command")
    n3 = await create_network(world.client, world.admin, "east")
    await put_device(world.client, world.admin, "e1", n3)
    item = await insert(admin, "e1", "hello")
    assert await admin.push() == notification_push(
        sub,
        item["id"],
        item["timestamp"],
        device_id="e1",
        network_id=n3,
        device_type_id=None,
        name="hello",
    )
    await admin.ok("command/insert", deviceId="e1", command={"command": "go"})
    push = await admin.push()
    assert (push["action"], push["subscriptionId"], push["command"]["deviceId"]) == (
        "command/insert",
        command_sub,
        "e1",
    )


async def test_fan_out_to_several_subscribers(world: World) -> None:
    alice_1 = await connect(world.client, world.alice)
    alice_2 = await connect(world.client, world.alice)
    admin_sub = await connect(world.client, world.admin)
    bob = await connect(world.client, world.bob)
    subs = [
        await alice_1.subscribe(deviceId="d1"),
        await alice_2.subscribe(networkIds=[world.n1]),
        await admin_sub.subscribe(),
    ]
    # One session with two matching subscriptions gets the item once per subscription.
    double = await connect(world.client, world.alice)
    double_subs = [await double.subscribe(deviceId="d1"), await double.subscribe(names=["temp"])]
    await bob.subscribe()
    publisher = await connect(world.client, world.alice)
    item = await insert(publisher, "d1", "temp", {"v": 1})
    for peer, sub in zip((alice_1, alice_2, admin_sub), subs, strict=True):
        assert await peer.push() == notification_push(
            sub,
            item["id"],
            item["timestamp"],
            device_id="d1",
            network_id=world.n1,
            device_type_id=1,
            name="temp",
            parameters={"v": 1},
        )
    received = await double.pushes_n(2)
    assert sorted(p["subscriptionId"] for p in received) == sorted(double_subs)
    assert received[0]["notification"] == received[1]["notification"]
    for peer in (alice_1, alice_2, admin_sub, double, bob):
        await peer.no_push(0.1)


async def test_unsubscribe_and_list(world: World) -> None:
    peer = await connect(world.client, world.alice)
    n_a = await peer.subscribe(deviceId="d1")
    n_b = await peer.subscribe(networkIds=[world.n1], deviceTypeIds=[2, 1], names=["b", "a"])
    c_a = await peer.subscribe("command", deviceId="d3", returnUpdatedCommands=True)
    listed = await peer.ok("subscription/list")
    assert listed == {
        "subscriptions": [
            {
                "subscriptionId": n_a,
                "type": "notification",
                "deviceId": "d1",
                "networkIds": None,
                "deviceTypeIds": None,
                "names": None,
            },
            {
                "subscriptionId": n_b,
                "type": "notification",
                "deviceId": None,
                "networkIds": [world.n1],
                "deviceTypeIds": [1, 2],
                "names": ["a", "b"],
            },
            {
                "subscriptionId": c_a,
                "type": "command",
                "deviceId": "d3",
                "networkIds": None,
                "deviceTypeIds": None,
                "names": None,
            },
        ]
    }
    assert await peer.ok("subscription/list", type="command") == {
        "subscriptions": [listed["subscriptions"][2]]
    }
    await peer.fails(
        "subscription/list", 400, "type: must be one of notification, command", type="x"
    )

    # By id: that subscription stops, the others go on.
    assert await peer.ok("notification/unsubscribe", subscriptionId=n_a) == {}
    await peer.fails(
        "notification/unsubscribe", 404, f"Subscription {n_a} not found", subscriptionId=n_a
    )
    await peer.fails(
        "notification/unsubscribe", 404, f"Subscription {c_a} not found", subscriptionId=c_a
    )
    admin = await connect(world.client, world.admin)
    await insert(admin, "d1", "a")
    push = await peer.push()
    assert (push["subscriptionId"], push["notification"]["notification"]) == (n_b, "a")
    await peer.no_push(0.1)

    # All of one kind: notifications stop, the command subscription stays.
    assert await peer.ok("notification/unsubscribe") == {}
    assert [s["subscriptionId"] for s in (await peer.ok("subscription/list"))["subscriptions"]] == [
        c_a
    ]
    await insert(admin, "d1", "a")
    await admin.ok("command/insert", deviceId="d3", command={"command": "go"})
    push = await peer.push()
    assert (push["action"], push["subscriptionId"]) == ("command/insert", c_a)
    await peer.no_push(0.1)
    assert await peer.ok("command/unsubscribe", subscriptionId=c_a) == {}
    assert await peer.ok("subscription/list") == {"subscriptions": []}


async def test_subscribe_argument_errors(world: World) -> None:
    peer = await connect(world.client, world.admin)
    await peer.fails(
        "notification/subscribe",
        422,
        "give deviceId or networkIds, not both",
        deviceId="d1",
        networkIds=[world.n1],
    )
    await peer.fails("notification/subscribe", 404, "Device nope not found", deviceId="nope")
    await peer.fails(
        "command/subscribe", 422, "timestamp: not an ISO-8601 timestamp: 'soon'", timestamp="soon"
    )
    await peer.fails("notification/subscribe", 400, "networkIds: must be an array", networkIds=1)
    assert await peer.ok("subscription/list") == {"subscriptions": []}
