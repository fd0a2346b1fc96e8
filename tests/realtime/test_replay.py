"""Subscribe with ``timestamp``: stored items newer than it first, then live, with no gap and no
duplicate, including items acknowledged to their sender whose batch is not yet written."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

from gateway.clock import iso, parse_iso
from gateway.devices.messages import REPLAY_PAGE
from tests.conftest import AppFactory
from tests.realtime.helpers import Peer, World, build_world, connect, insert, rest

FAST = {"ws_rate": 1_000_000.0, "ws_burst": 1_000_000}
"""No rate limit: these tests send hundreds of messages from one socket."""


async def _server_time(peer: Peer) -> str:
    """The server's time, then a pause past its millisecond: items are stored at millisecond
    precision, and one stored in the same millisecond is not newer than this timestamp."""
    timestamp: str = (await peer.ok("server/info"))["info"]["serverTimestamp"]
    await asyncio.sleep(0.002)
    return timestamp


async def _insert_many(peer: Peer, device_id: str, count: int, name: str = "n") -> list[int]:
    return [(await insert(peer, device_id, f"{name}{i}"))["id"] for i in range(count)]


async def _collect_ids(peer: Peer, subscription_id: int, count: int) -> list[int]:
    pushes = await peer.pushes_n(count, timeout=10)
    assert {p["subscriptionId"] for p in pushes} == {subscription_id}
    return [p["notification"]["id"] for p in pushes]


async def _replay_while_inserting(client: Any, world: World, before: int, during: int) -> None:
    admin = await connect(client, world.admin)
    since = await _server_time(admin)
    earlier = await _insert_many(admin, "d1", before, "early")
    publisher = await connect(client, world.admin)

    started = asyncio.Event()

    async def keep_inserting() -> list[int]:
        ids = []
        for i in range(during):
            ids.append((await insert(publisher, "d1", f"late{i}"))["id"])
            if i == 5:
                started.set()
        return ids

    task = asyncio.create_task(keep_inserting())
    await asyncio.wait_for(started.wait(), 5)
    subscriber = await connect(client, world.alice)
    sub = await subscriber.subscribe(deviceId="d1", timestamp=since)
    later = await asyncio.wait_for(task, 10)
    everything = earlier + later
    received = await _collect_ids(subscriber, sub, len(everything))
    assert received == sorted(everything), "ids not strictly increasing, duplicated or missing"
    assert len(set(received)) == len(received)
    await subscriber.no_push(0.2)


async def test_replay_then_live_no_gap_no_duplicate(make_client: AppFactory) -> None:
    client = await make_client(**FAST)
    world = await build_world(client)
    await _replay_while_inserting(client, world, before=200, during=200)


async def test_replay_includes_acknowledged_but_unwritten(
    make_client: AppFactory, clean_db: str
) -> None:
    """persist_interval=5 s: nothing is written by the timer during the test, and
    persist_batch=10 makes full batches of ten get written at once, so the replay merges
    written rows with pending ones."""
    client = await make_client(persist_interval=5, persist_batch=10, **FAST)
    world = await build_world(client)
    admin = await connect(client, world.admin)
    since = await _server_time(admin)
    ids = await _insert_many(admin, "d1", 25)
    conn = await asyncpg.connect(clean_db)
    try:
        # The full batches are written off the hot path: wait (bounded) for the first.
        deadline = time.monotonic() + 5
        while (written := await conn.fetchval("SELECT count(*) FROM notifications")) < 10:
            assert time.monotonic() < deadline, "no batch was written"
            await asyncio.sleep(0.01)
    finally:
        await conn.close()
    assert written in (10, 20), written
    subscriber = await connect(client, world.alice)
    sub = await subscriber.subscribe(deviceId="d1", timestamp=since)
    assert await _collect_ids(subscriber, sub, 25) == ids
    await subscriber.no_push(0.2)
    # ...and the same while more are inserted concurrently.
    await _replay_while_inserting(client, world, before=30, during=100)


async def test_replay_with_nothing_unwritten(make_client: AppFactory) -> None:
    client = await make_client(persist_interval=5, **FAST)
    world = await build_world(client)
    admin = await connect(client, world.admin)
    since = await _server_time(admin)
    ids = await _insert_many(admin, "d3", 5)
    subscriber = await connect(client, world.alice)
    sub = await subscriber.subscribe(networkIds=[world.n1], timestamp=since)
    assert await _collect_ids(subscriber, sub, 5) == ids


async def test_replay_respects_filters_and_scope(world: World) -> None:
    admin = await connect(world.client, world.admin)
    since = await _server_time(admin)
    shown = [
        (await insert(admin, "d1", "alarm"))["id"],
        (await insert(admin, "d3", "alarm"))["id"],
    ]
    await insert(admin, "d1", "temp")
    await insert(admin, "d2", "alarm")  # n2: alice is not a member
    alice = await connect(world.client, world.alice)
    sub = await alice.subscribe(names=["alarm"], timestamp=since)
    assert await _collect_ids(alice, sub, 2) == shown
    await alice.no_push()
    typed = await connect(world.client, world.admin)
    sub = await typed.subscribe(deviceTypeIds=[2], timestamp=since)
    push = await typed.push()
    assert (push["subscriptionId"], push["notification"]["deviceId"]) == (sub, "d2")
    await typed.no_push()


async def test_replay_skips_older_items(world: World) -> None:
    admin = await connect(world.client, world.admin)
    await _insert_many(admin, "d1", 3, "old")
    # Emitted times are truncated to the millisecond, so an item of the same millisecond as
    # `since` is (rightly) replayed; step past it.
    await asyncio.sleep(0.005)
    since = await _server_time(admin)
    new = await _insert_many(admin, "d1", 2, "new")
    subscriber = await connect(world.client, world.admin)
    sub = await subscriber.subscribe(deviceId="d1", timestamp=since)
    assert await _collect_ids(subscriber, sub, 2) == new
    await subscriber.no_push()


async def test_command_replay(world: World) -> None:
    admin = await connect(world.client, world.admin)
    since = await _server_time(admin)
    replies = [
        (await admin.ok("command/insert", deviceId="d1", command={"command": f"c{i}"}))["command"]
        for i in range(3)
    ]
    subscriber = await connect(world.client, world.alice)
    sub = await subscriber.subscribe("command", deviceId="d1", timestamp=since)
    pushes = await subscriber.pushes_n(3)
    assert [(p["action"], p["subscriptionId"]) for p in pushes] == [("command/insert", sub)] * 3
    assert [p["command"]["id"] for p in pushes] == [r["id"] for r in replies]
    assert pushes[0]["command"] == {
        "id": replies[0]["id"],
        "deviceId": "d1",
        "networkId": world.n1,
        "deviceTypeId": 1,
        "userId": replies[0]["userId"],
        "command": "c0",
        "parameters": None,
        "lifetime": None,
        "timestamp": replies[0]["timestamp"],
        "lastUpdated": replies[0]["lastUpdated"],
        "status": None,
        "result": None,
    }


async def test_with_updates_a_replay_brings_the_state_changes_since_its_timestamp(
    world: World,
) -> None:
    """returnUpdatedCommands with a timestamp: a command created before it and changed after
    comes as a command/update with its new state, one created after as a command/insert, in
    the order of their lastUpdated; without returnUpdatedCommands, only what was created."""
    admin = await connect(world.client, world.admin)
    old = (await admin.ok("command/insert", deviceId="d1", command={"command": "old"}))["command"]
    untouched = (await admin.ok("command/insert", deviceId="d1", command={"command": "x"}))[
        "command"
    ]
    await asyncio.sleep(0.002)  # past their millisecond: the timestamp names a later one
    since = await _server_time(admin)
    new = (await admin.ok("command/insert", deviceId="d1", command={"command": "new"}))["command"]
    await admin.ok("command/update", deviceId="d1", commandId=old["id"], command={"status": "done"})
    with_updates = await connect(world.client, world.alice)
    sub = await with_updates.subscribe(
        "command", deviceId="d1", timestamp=since, returnUpdatedCommands=True
    )
    pushes = await with_updates.pushes_n(2)
    assert [(p["action"], p["subscriptionId"], p["command"]["id"]) for p in pushes] == [
        ("command/insert", sub, new["id"]),
        ("command/update", sub, old["id"]),
    ]
    assert pushes[1]["command"]["status"] == "done"
    assert pushes[1]["command"]["timestamp"] == old["timestamp"]
    assert untouched["id"] not in {p["command"]["id"] for p in pushes}
    await with_updates.no_push(0.2)
    without = await connect(world.client, world.alice)
    await without.subscribe("command", deviceId="d1", timestamp=since)
    [only] = await without.pushes_n(1)
    assert (only["action"], only["command"]["id"]) == ("command/insert", new["id"])
    await without.no_push(0.2)


async def test_replay_larger_than_the_outbound_queue(make_client: AppFactory) -> None:
    """A reconnecting dashboard may have missed more items than its outbound queue holds; the
    replay must pace itself instead of closing the session as a slow consumer."""
    client = await make_client(ws_queue_messages=20, **FAST)
    world = await build_world(client)
    admin = await connect(client, world.admin)
    since = await _server_time(admin)
    ids = await _insert_many(admin, "d1", 150)
    subscriber = await connect(client, world.alice)
    sub = await subscriber.subscribe(deviceId="d1", timestamp=since)
    assert await _collect_ids(subscriber, sub, 150) == ids
    assert await subscriber.is_open()


async def test_command_updated_during_replay_is_not_lost(make_client: AppFactory) -> None:
    """An update that arrives while the replay is being sent must reach a returnUpdatedCommands
    subscriber: the replayed copy may predate it."""
    client = await make_client(ws_queue_messages=20, **FAST)
    world = await build_world(client)
    admin = await connect(client, world.admin)
    since = await _server_time(admin)
    command_ids = [
        (await admin.ok("command/insert", deviceId="d1", command={"command": f"c{i}"}))["command"][
            "id"
        ]
        for i in range(150)
    ]
    target = command_ids[-1]
    subscriber = await connect(client, world.alice)
    await subscriber.subscribe(
        "command", deviceId="d1", timestamp=since, returnUpdatedCommands=True
    )
    await admin.ok("command/update", deviceId="d1", commandId=target, command={"status": "done"})
    inserted: list[int] = []
    latest_status: dict[int, Any] = {}
    while len(inserted) < len(command_ids) or latest_status.get(target) != "done":
        push = await subscriber.push(timeout=5)
        if push["action"] == "command/insert":
            inserted.append(push["command"]["id"])
        latest_status[push["command"]["id"]] = push["command"]["status"]
    assert inserted == command_ids
    await subscriber.no_push(0.2)


async def test_server_time_then_insert_is_replayed(world: World) -> None:
    """A serverTimestamp covers what is inserted in a later millisecond: the emitted time is
    truncated, never rounded up to a moment after the one it names."""
    admin = await connect(world.client, world.admin)
    for i in range(30):
        since = (await admin.ok("server/info"))["info"]["serverTimestamp"]
        await asyncio.sleep(0.0011)
        item = await insert(admin, "d1", f"p{i}")
        assert item["timestamp"] > since
        sub = await admin.subscribe(deviceId="d1", names=[f"p{i}"], timestamp=since)
        push = await admin.push()
        assert (push["subscriptionId"], push["notification"]["id"]) == (sub, item["id"]), i
        await admin.ok("notification/unsubscribe", subscriptionId=sub)


async def test_every_emitted_timestamp_is_accepted_back(world: World) -> None:
    admin = await connect(world.client, world.admin)
    emitted = [await _server_time(admin)]
    emitted.append((await insert(admin, "d1", "x"))["timestamp"])
    command = (await admin.ok("command/insert", deviceId="d1", command={"command": "c"}))["command"]
    emitted += [command["timestamp"], command["lastUpdated"]]
    await admin.subscribe()
    await admin.subscribe("command", returnUpdatedCommands=True)
    await insert(admin, "d1", "y")
    await admin.ok("command/update", deviceId="d1", commandId=command["id"], command={})
    for push in await admin.pushes_n(2):
        body = push.get("notification") or push["command"]
        emitted.append(body["timestamp"])
        if "lastUpdated" in body:
            emitted.append(body["lastUpdated"])
    login = await rest(
        world.client,
        "POST",
        "/v1/auth/token/create",
        world.admin,
        201,
        {"actions": ["GetDevice"]},
    )
    emitted += [login["issued_at"], login["expires_at"]]
    user = await rest(world.client, "GET", f"/v1/users/{world.alice_id}", world.admin, 200)
    emitted += [user["created_at"], user["updated_at"]]
    assert len(emitted) == 11
    for timestamp in emitted:
        await admin.ok("notification/subscribe", deviceId="d1", timestamp=timestamp)
        await admin.ok("command/subscribe", deviceId="d1", timestamp=timestamp)


def test_format_timestamp_never_names_a_later_moment() -> None:
    """Truncated, not rounded: a time rounded up would make a subscribe miss what came in the
    last half millisecond before it."""
    assert iso(1_700_000_000.9996) == "2023-11-14T22:13:20.999Z"
    assert iso(1_700_000_000.0004) == "2023-11-14T22:13:20.000Z"
    for text in (
        "2030-01-02T01:04:05.678Z",
        "2030-01-02T01:04:05.001Z",
        "2030-01-02T01:04:05.999Z",
    ):
        assert iso(parse_iso(text)) == text


async def test_a_replay_longer_than_a_page_sends_every_item_once_in_order(
    make_client: AppFactory, clean_db: str
) -> None:
    """More stored items than one read returns (``REPLAY_PAGE``), many sharing a timestamp
    across the page boundary, then items acknowledged but not yet written: all of them, in
    order, once. The first pass sent the first page and went live, skipping the rest."""
    client = await make_client(persist_interval=5, **FAST)
    world = await build_world(client)
    admin = await connect(client, world.admin)
    since = parse_iso(await _server_time(admin))
    stored = REPLAY_PAGE + 50
    conn = await asyncpg.connect(clean_db)
    try:
        # Three timestamps only: every page boundary falls inside a run of equal timestamps.
        await conn.execute(
            """INSERT INTO notifications
               (id, device_id, network_id, device_type_id, notification, parameters, "timestamp")
               SELECT 10000000 + n, 'd1', $1, 1, 'bulk', NULL,
                      to_timestamp($2) + (n % 3) * interval '1 millisecond'
               FROM generate_series(1, $3) AS n""",
            world.n1,
            since + 0.001,
            stored,
        )
    finally:
        await conn.close()
    pending = await _insert_many(admin, "d1", 3, "pending")
    subscriber = await connect(client, world.alice)
    sub = await subscriber.subscribe(deviceId="d1", timestamp=iso(since))
    pushes = await subscriber.pushes_n(stored + 3, timeout=60)
    assert {push["subscriptionId"] for push in pushes} == {sub}
    received = [push["notification"]["id"] for push in pushes]
    bulk = sorted(range(10000001, 10000001 + stored), key=lambda i: ((i - 10000000) % 3, i))
    assert received == bulk + pending
    await subscriber.no_push(0.2)
