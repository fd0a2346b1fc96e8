"""Device scope: the token's deviceIds / networkIds, and the user's current memberships, which
apply to live sessions at once (next message and every push), without a reconnect."""

from __future__ import annotations

from tests.realtime.helpers import World, connect, insert, membership, mint, rest


async def test_device_ids_token(world: World) -> None:
    token = await mint(world.client, world.alice, deviceIds=["d1"])
    peer = await connect(world.client, token)
    assert (await peer.ok("device/get", deviceId="d1"))["device"]["id"] == "d1"
    await peer.fails("device/get", 403, "Device d3 is outside the token's scope", deviceId="d3")
    assert [d["id"] for d in (await peer.ok("device/list"))["devices"]] == ["d1"]
    await peer.fails(
        "notification/insert",
        403,
        "Device d3 is outside the token's scope",
        deviceId="d3",
        notification={"notification": "x"},
    )
    await peer.fails(
        "command/insert",
        403,
        "Device d3 is outside the token's scope",
        deviceId="d3",
        command={"command": "x"},
    )
    await peer.fails(
        "device/save",
        403,
        f"Network {world.n1} is outside the token's scope",
        deviceId="d7",
        device={"name": "seven"},
    )
    await peer.ok("notification/insert", deviceId="d1", notification={"notification": "x"})

    # A network-wide subscription still delivers only the token's devices.
    sub = await peer.subscribe(networkIds=[world.n1])
    admin = await connect(world.client, world.admin)
    await insert(admin, "d3", "hidden")
    shown = await insert(admin, "d1", "shown")
    push = await peer.push()
    assert (push["subscriptionId"], push["notification"]["id"]) == (sub, shown["id"])
    await peer.no_push()


async def test_network_ids_token(world: World) -> None:
    await membership(world.client, world.admin, world.alice_id, world.n2, True)
    token = await mint(world.client, world.alice, networkIds=[world.n1])
    peer = await connect(world.client, token)
    await peer.fails("device/get", 403, "Device d2 is outside the token's scope", deviceId="d2")
    await peer.fails(
        "notification/subscribe",
        403,
        f"networkIds outside the token's scope: {world.n2}",
        networkIds=[world.n2],
    )
    assert [d["id"] for d in (await peer.ok("device/list"))["devices"]] == ["d1", "d3"]
    sub = await peer.subscribe()
    admin = await connect(world.client, world.admin)
    await insert(admin, "d2", "hidden")
    shown = await insert(admin, "d3", "shown")
    push = await peer.push()
    assert (push["subscriptionId"], push["notification"]["id"]) == (sub, shown["id"])
    await peer.no_push()
    # The same user's full token reaches n2 now.
    full = await connect(world.client, world.alice)
    assert (await full.ok("device/get", deviceId="d2"))["device"]["id"] == "d2"


async def test_membership_changes_apply_to_live_socket(world: World) -> None:
    alice = await connect(world.client, world.alice)
    everything = await alice.subscribe()
    by_device = await alice.subscribe("command", deviceId="d1")
    admin = await connect(world.client, world.admin)

    await alice.fails("device/get", 403, "Device d2 is outside the token's scope", deviceId="d2")
    await insert(admin, "d2", "before")
    await alice.no_push()

    # Added: the very next message and the next push see n2.
    await membership(world.client, world.admin, world.alice_id, world.n2, True)
    assert (await alice.ok("device/get", deviceId="d2"))["device"]["id"] == "d2"
    item = await insert(admin, "d2", "member")
    push = await alice.push()
    assert (push["subscriptionId"], push["notification"]["id"]) == (everything, item["id"])
    by_d2 = await alice.subscribe(deviceId="d2")
    item = await insert(admin, "d2", "both")
    assert sorted(p["subscriptionId"] for p in await alice.pushes_n(2)) == sorted(
        [everything, by_d2]
    )

    # Removed: denied at once, and no push from n2 on any subscription.
    await membership(world.client, world.admin, world.alice_id, world.n2, False)
    await alice.fails("device/get", 403, "Device d2 is outside the token's scope", deviceId="d2")
    await alice.fails(
        "notification/insert",
        403,
        "Device d2 is outside the token's scope",
        deviceId="d2",
        notification={"notification": "x"},
    )
    await insert(admin, "d2", "after")
    await alice.no_push()
    # n1 is unaffected.
    item = await insert(admin, "d1", "still")
    push = await alice.push()
    assert (push["subscriptionId"], push["notification"]["id"]) == (everything, item["id"])
    await admin.ok("command/insert", deviceId="d1", command={"command": "go"})
    assert (await alice.push())["subscriptionId"] == by_device

    # Removed from n1 as well (through PATCH /v1/users): nothing reaches alice any more.
    await rest(
        world.client, "PATCH", f"/v1/users/{world.alice_id}", world.admin, 200, {"networkIds": []}
    )
    await alice.fails("device/get", 403, "Device d1 is outside the token's scope", deviceId="d1")
    await insert(admin, "d1", "gone")
    await admin.ok("command/insert", deviceId="d1", command={"command": "go"})
    await alice.no_push()
    assert await alice.ok("device/list") == {"devices": []}

    # Re-added through PATCH: back at once.
    await rest(
        world.client,
        "PATCH",
        f"/v1/users/{world.alice_id}",
        world.admin,
        200,
        {"networkIds": [world.n1]},
    )
    item = await insert(admin, "d1", "back")
    push = await alice.push()
    assert (push["subscriptionId"], push["notification"]["id"]) == (everything, item["id"])


async def test_network_deleted_stops_pushes(world: World) -> None:
    alice = await connect(world.client, world.alice)
    await alice.subscribe()
    await rest(world.client, "DELETE", f"/v1/networks/{world.n1}", world.admin, 204)
    await alice.fails("device/get", 404, "Device d1 not found", deviceId="d1")
    assert await alice.ok("device/list") == {"devices": []}


async def test_reauthenticating_with_a_narrower_token_narrows_live_subscriptions(
    world: World,
) -> None:
    alice = await connect(world.client, world.alice)
    sub = await alice.subscribe(networkIds=[world.n1])
    admin = await connect(world.client, world.admin)
    narrow = await mint(world.client, world.alice, deviceIds=["d1"], actions=["GetDevice"])
    assert await alice.ok("authenticate", token=narrow) == {}
    await insert(admin, "d3", "outside-device-scope")
    await insert(admin, "d1", "outside-action-set")
    await alice.no_push()
    await alice.fails("notification/subscribe", 403, "Missing permission: GetDeviceNotification")
    await alice.fails("device/get", 403, "Device d3 is outside the token's scope", deviceId="d3")
    # Back to a full token: the same subscription delivers again.
    assert await alice.ok("authenticate", token=world.alice) == {}
    item = await insert(admin, "d3", "again")
    push = await alice.push()
    assert (push["subscriptionId"], push["notification"]["id"]) == (sub, item["id"])


async def test_device_moved_to_another_network_leaves_the_old_members(world: World) -> None:
    alice = await connect(world.client, world.alice)
    by_device = await alice.subscribe(deviceId="d1")
    by_network = await alice.subscribe(networkIds=[world.n1])
    bob = await connect(world.client, world.bob)
    bob_sub = await bob.subscribe()
    admin = await connect(world.client, world.admin)
    await rest(world.client, "PUT", "/v1/devices/d1", world.admin, 200, {"networkId": world.n2})
    await alice.fails("device/get", 403, "Device d1 is outside the token's scope", deviceId="d1")
    item = await insert(admin, "d1", "moved")
    push = await bob.push()
    assert (push["subscriptionId"], push["notification"]["id"]) == (bob_sub, item["id"])
    assert push["notification"]["networkId"] == world.n2
    await alice.no_push()
    assert {by_device, by_network} == {
        s["subscriptionId"] for s in (await alice.ok("subscription/list"))["subscriptions"]
    }
