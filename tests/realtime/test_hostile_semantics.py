"""Semantics a hostile or unlucky client reaches over the WebSocket: edge cases of replays,
subscriptions, commands and in-session authentication that the envelope fuzzer cannot judge,
each held to the documented reply or close code."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
import tracemalloc
from typing import Any

import asyncpg
import orjson
import pytest

from gateway.app import WIRING_KEY
from gateway.clock import iso, parse_iso
from gateway.devices.messages import REPLAY_PAGE
from tests.conftest import AppFactory, bearer, login
from tests.realtime.helpers import (
    ALICE_EMAIL,
    PASSWORD,
    World,
    build_world,
    connect,
    insert,
    mint,
    rest,
)
from tests.support.http import expect_error
from tests.support.tokens import resign

FAST = {"ws_rate": 1_000_000.0, "ws_burst": 1_000_000}


async def _written(database_url: str, table: str, count: int) -> None:
    """Wait (bounded) until ``count`` rows of ``table`` are written."""
    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + 5
        while await conn.fetchval(f"SELECT count(*) FROM {table}") < count:
            assert time.monotonic() < deadline, f"{count} {table} were not written in time"
            await asyncio.sleep(0.01)
    finally:
        await conn.close()


async def test_a_replay_sends_the_newest_state_of_a_command_whose_update_is_not_written(
    make_client: AppFactory, clean_db: str
) -> None:
    """A command written in one state and updated since, the update acknowledged but not yet
    written: a returnUpdatedCommands replay must send the acknowledged state, not the row."""
    # A batch of two is written at once; a lone update waits for the (distant) timer.
    client = await make_client(persist_interval=60, persist_batch=2, **FAST)
    world = await build_world(client)
    admin = await connect(client, world.admin)
    since = (await admin.ok("server/info"))["info"]["serverTimestamp"]
    await asyncio.sleep(0.002)
    first = (await admin.ok("command/insert", deviceId="d1", command={"command": "a"}))["command"]
    await admin.ok("command/insert", deviceId="d1", command={"command": "b"})
    await _written(clean_db, "commands", 2)
    await admin.ok(
        "command/update", deviceId="d1", commandId=first["id"], command={"status": "done"}
    )
    dashboard = await connect(client, world.alice)
    sub = await dashboard.subscribe(
        "command", deviceId="d1", timestamp=since, returnUpdatedCommands=True
    )
    pushes = await dashboard.pushes_n(2)
    # In the order of lastUpdated, each in its current state.
    assert [(p["action"], p["subscriptionId"], p["command"]["status"]) for p in pushes] == [
        ("command/insert", sub, None),
        ("command/insert", sub, "done"),
    ]
    assert pushes[1]["command"]["id"] == first["id"]
    await dashboard.no_push(0.2)


async def test_a_replay_longer_than_a_page_sends_a_pending_update_of_an_item_of_its_first_page(
    make_client: AppFactory, clean_db: str
) -> None:
    """The pending items are merged into the last page: a newer state of a command the first
    page sent must still go, as a command/update, not be dropped as a duplicate."""
    client = await make_client(persist_interval=60, **FAST)
    world = await build_world(client)
    admin = await connect(client, world.admin)
    since = parse_iso((await admin.ok("server/info"))["info"]["serverTimestamp"])
    stored = REPLAY_PAGE + 50
    conn = await asyncpg.connect(clean_db)
    try:
        await conn.execute(
            """INSERT INTO commands
               (id, device_id, network_id, device_type_id, user_id, command, "timestamp",
                last_updated)
               SELECT 10000000 + n, 'd1', $1, 1, 1, 'bulk', t, t
               FROM generate_series(1, $3) AS n,
                    LATERAL (SELECT to_timestamp($2) + (n % 3) * interval '1 millisecond') AS s(t)
            """,
            world.n1,
            since + 0.001,
            stored,
        )
    finally:
        await conn.close()
    target = 10000003  # the earliest lastUpdated: in the first page
    await admin.ok("command/update", deviceId="d1", commandId=target, command={"status": "done"})
    dashboard = await connect(client, world.alice)
    sub = await dashboard.subscribe(
        "command", deviceId="d1", timestamp=iso(since), returnUpdatedCommands=True
    )
    pushes = await dashboard.pushes_n(stored + 1, timeout=60)
    assert {push["subscriptionId"] for push in pushes} == {sub}
    assert pushes[0]["command"]["id"] == target
    assert {push["action"] for push in pushes[:-1]} == {"command/insert"}
    assert len({push["command"]["id"] for push in pushes[:-1]}) == stored
    last = pushes[-1]
    assert (last["action"], last["command"]["id"], last["command"]["status"]) == (
        "command/update",
        target,
        "done",
    )
    await dashboard.no_push(0.2)


async def test_subscriptions_per_session_are_bounded(make_client: AppFactory) -> None:
    """Each subscription keeps its filters (up to a message's worth of names) while it lives:
    a session subscribing again and again must meet a bound, not grow the server's memory."""
    most = 16
    client = await make_client(**FAST, ws_max_subscriptions=most)
    world = await build_world(client)
    alice = await connect(client, world.alice)
    for i in range(most):
        kind = "notification" if i % 2 else "command"
        assert (await alice.ok(f"{kind}/subscribe", names=[f"n{i}"]))["subscriptionId"] > 0
    for kind in ("notification", "command"):
        await alice.fails(
            f"{kind}/subscribe",
            403,
            f"Too many subscriptions on this socket (at most {most}); unsubscribe first",
            deviceId="d1",
        )
    listed = (await alice.ok("subscription/list"))["subscriptions"]
    assert len(listed) == most
    await alice.ok("notification/unsubscribe", subscriptionId=listed[-1]["subscriptionId"])
    sub = await alice.subscribe(deviceId="d1")
    item = await insert(await connect(client, world.admin), "d1", "temperature")
    push = await alice.push()
    assert (push["subscriptionId"], push["notification"]["id"]) == (sub, item["id"])


async def test_an_item_whose_push_exceeds_the_outbound_byte_bound_is_delivered_not_a_poison(
    make_client: AppFactory,
) -> None:
    """A notification of a 300 KB REST body whose numbers are written out longer (9e15 is
    9000000000000000.0) makes a push above GATEWAY_WS_QUEUE_BYTES (1 MiB). Alone in its
    queue it must be written: closing as a slow consumer every session it is for, and again
    at each replay that covers it, would let one insert cut every dashboard off for good."""
    client = await make_client()
    world = await build_world(client)
    live = await connect(client, world.alice)
    since = (await live.ok("server/info"))["info"]["serverTimestamp"]
    sub = await live.subscribe(deviceId="d1")
    count = 59_000
    body = b'{"notification":"big","parameters":[' + b",".join([b"9e15"] * count) + b"]}"
    assert len(body) < 300_000
    response = await client.post(
        "/api/rest/device/d1/notification",
        data=body,
        headers={**bearer(world.admin), "Content-Type": "application/json"},
    )
    assert response.status == 201, await response.text()
    item_id = (await response.json())["id"]
    push = await live.push()
    assert (push["subscriptionId"], push["notification"]["id"]) == (sub, item_id)
    assert push["notification"]["parameters"] == [9e15] * count
    assert len(orjson.dumps(push)) > 1024 * 1024
    replayed = await connect(client, world.alice)
    again = await replayed.subscribe(deviceId="d1", timestamp=since)
    push = await replayed.push()
    assert (push["subscriptionId"], push["notification"]["id"]) == (again, item_id)
    listed = (await replayed.ok("notification/list", deviceId="d1"))["notifications"]
    assert [item["id"] for item in listed] == [item_id]
    assert await live.is_open()
    assert await replayed.is_open()


async def test_a_deleted_devices_id_registered_again_elsewhere_does_not_open_its_history(
    world: World,
) -> None:
    """Alice (network n1) sends on d1 and deletes it; Bob (n2 only) registers the id d1 in
    n2. The history kept under d1 is n1's: it must stay out of Bob's reach on every path, as
    it already was for a replay, and his commands cannot touch n1's."""
    alice = await connect(world.client, world.alice)
    secret = await insert(alice, "d1", "secret", {"pin": 1234})
    old = (await alice.ok("command/insert", deviceId="d1", command={"command": "unlock"}))[
        "command"
    ]
    await alice.ok("device/delete", deviceId="d1")
    watcher = await connect(world.client, world.alice)
    await watcher.subscribe("command", networkIds=[world.n1], returnUpdatedCommands=True)
    bob = await connect(world.client, world.bob)
    await bob.ok("device/save", deviceId="d1", device={"name": "mine", "networkId": world.n2})
    mine = await insert(bob, "d1", "mine")
    listed = (await bob.ok("notification/list", deviceId="d1"))["notifications"]
    assert [item["id"] for item in listed] == [mine["id"]]
    assert (await bob.ok("command/list", deviceId="d1"))["commands"] == []
    await bob.fails(
        "notification/get",
        404,
        f"Notification {secret['id']} not found for device d1",
        deviceId="d1",
        notificationId=secret["id"],
    )
    await bob.fails(
        "command/get",
        404,
        f"Command {old['id']} not found for device d1",
        deviceId="d1",
        commandId=old["id"],
    )
    await bob.fails(
        "command/update",
        404,
        f"Command {old['id']} not found for device d1",
        deviceId="d1",
        commandId=old["id"],
        command={"status": "hijacked"},
    )
    await watcher.no_push()
    for path in (
        "/v1/devices/d1/notifications",
        "/v1/devices/d1/notifications/poll?since=2000-01-01T00:00:00Z&waitTimeout=0",
        "/api/rest/device/d1/notification/poll?timestamp=2000-01-01T00:00:00Z&waitTimeout=0",
    ):
        body = await rest(world.client, "GET", path, world.bob, 200)
        items = body if isinstance(body, list) else body["notifications"]
        assert [item["id"] for item in items] == [mine["id"]], path
    # An administrator reaches every network: the whole history is still there.
    admin = await connect(world.client, world.admin)
    listed = (await admin.ok("notification/list", deviceId="d1"))["notifications"]
    assert [item["id"] for item in listed] == [secret["id"], mine["id"]]


async def test_device_list_pages_and_filters_beyond_ten_thousand_devices(
    world: World, clean_db: str
) -> None:
    """device/list read the first 10,000 visible devices by id and only then applied its
    networkId, skip and take: past that many devices, a network's devices and later pages
    came back empty, and skip was not bounded as documented (0-100000)."""
    many = 10_050
    conn = await asyncpg.connect(clean_db)
    try:
        await conn.execute(
            """INSERT INTO devices (id, name, network_id)
               SELECT 'a' || lpad(n::text, 5, '0'), 'bulk', $1
               FROM generate_series(0, $2 - 1) AS n""",
            world.n1,
            many,
        )
    finally:
        await conn.close()
    admin = await connect(world.client, world.admin)
    listed = (await admin.ok("device/list", networkId=world.n2))["devices"]
    assert [device["id"] for device in listed] == ["d2"]
    alice = await connect(world.client, world.alice)
    listed = (await alice.ok("device/list", skip=10_000, take=1000))["devices"]
    assert [device["id"] for device in listed] == [
        *(f"a{n:05d}" for n in range(10_000, many)),
        "d1",
        "d3",
    ]
    listed = (await alice.ok("device/list", networkId=world.n1, skip=3, take=2))["devices"]
    assert [device["id"] for device in listed] == ["a00003", "a00004"]
    assert (await alice.ok("device/list", networkId=world.n2))["devices"] == []
    await alice.fails("device/list", 400, "skip: must be at most 100000", skip=100_001)


async def test_network_get_lists_a_scoped_tokens_device_past_ten_thousand(
    world: World, clean_db: str
) -> None:
    """network/get read the network's first 10,000 devices, then kept those in the token's
    deviceIds: a token for a device sorting after them saw a network without it."""
    conn = await asyncpg.connect(clean_db)
    try:
        await conn.execute(
            """INSERT INTO devices (id, name, network_id)
               SELECT 'a' || lpad(n::text, 5, '0'), 'bulk', $1
               FROM generate_series(0, 10049) AS n""",
            world.n1,
        )
    finally:
        await conn.close()
    scoped = await mint(world.client, world.alice, deviceIds=["d3"])
    peer = await connect(world.client, scoped)
    network = (await peer.ok("network/get", networkId=world.n1))["network"]
    assert [device["id"] for device in network["devices"]] == ["d3"]


async def test_a_bearer_upgrade_while_postgresql_is_down_is_a_503_not_a_dropped_socket(
    make_client: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A client's first socket on an instance loads its memberships from PostgreSQL. With the
    token on the upgrade and PostgreSQL down, that failed after the upgrade: a traceback in
    the log and a socket dropped without a close frame (1006). It is a 503 with Retry-After,
    as for a REST request, and the same token by message gets the documented 503 reply."""
    client = await make_client()
    world = await build_world(client)
    await client.app[WIRING_KEY].pool.close()
    upgrade = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
    }
    response = await client.get("/v1/ws", headers={**upgrade, **bearer(world.alice)})
    await expect_error(response, 503, "Database unavailable; retry later")
    assert response.headers["Retry-After"] == "1"
    peer = await connect(client)
    await peer.fails("authenticate", 503, "Database unavailable; retry later", token=world.alice)
    # An invalid token is still the documented close after the upgrade.
    refused = await connect(client, "not-a-jwt")
    assert await refused.closed() == (4001, "Invalid token")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def store_big_notifications(database_url: str, network_id: int, count: int) -> None:
    """``count`` stored notifications of d1 of 50 KB each, ids 10000001.., an hour old, 1 ms
    apart, parameters ``{"n": n, "b": "xxx..."}``."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            """INSERT INTO notifications
               (id, device_id, network_id, device_type_id, notification, parameters, "timestamp")
               SELECT 10000000 + n, 'd1', $1, 1, 'big',
                      jsonb_build_object('n', n, 'b', repeat('x', 50000)),
                      now() - interval '1 hour' + n * interval '1 millisecond'
               FROM generate_series(1, $2) AS n""",
            network_id,
            count,
        )
    finally:
        await conn.close()


async def test_a_deep_history_page_does_not_hold_the_payloads_it_skips(
    world: World, clean_db: str
) -> None:
    """notification/list reads skip + take rows to merge the pending items in; with their
    payloads, a page of 10 at skip 2000 over 50 KB notifications held 100 MB (and skip goes
    to 10,000, items over REST to 1 MiB). The skipped rows are read without payloads."""
    await store_big_notifications(clean_db, world.n1, 2010)
    alice = await connect(world.client, world.alice)
    pending = await insert(alice, "d1", "pending", {"p": 1})
    tracemalloc.start()
    try:
        listed = (await alice.ok("notification/list", deviceId="d1", skip=2005, take=10))[
            "notifications"
        ]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [item["id"] for item in listed] == [*range(10002006, 10002011), pending["id"]]
    assert [item["parameters"]["n"] for item in listed[:-1]] == list(range(2006, 2011))
    assert listed[-1]["parameters"] == {"p": 1}
    assert peak < 20_000_000, peak


async def test_a_replay_of_big_items_holds_a_chunk_of_them_not_a_page(
    world: World, clean_db: str
) -> None:
    """A replay read its pages of 10,000 stored items whole, payloads included, before its
    reply: 2,010 notifications of 50 KB held 100 MB for one subscribe (16 may run per session,
    items over REST reach 1 MiB). Pages are read without payloads and sent a chunk at a time,
    every item once, in order, payloads intact."""
    count = 2010
    await store_big_notifications(clean_db, world.n1, count)
    alice = await connect(world.client, world.alice)
    tracemalloc.start()
    try:
        sub = await alice.subscribe(deviceId="d1", timestamp="2000-01-01T00:00:00Z")
        first = await alice.push()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40_000_000, peak
    pushes = [first, *await alice.pushes_n(count - 1, timeout=30)]
    assert {push["subscriptionId"] for push in pushes} == {sub}
    assert [push["notification"]["parameters"]["n"] for push in pushes] == list(range(1, count + 1))
    assert {len(push["notification"]["parameters"]["b"]) for push in pushes} == {50000}
    await alice.no_push(0.2)


async def test_a_bad_token_sent_on_a_live_session_is_refused_and_changes_nothing(
    world: World,
) -> None:
    """Coverage: ``authenticate`` on an authenticated socket with every kind of bad token gets
    its exact error reply; the socket keeps its user, its rights and its subscriptions."""
    alice = await connect(world.client, world.alice)
    sub = await alice.subscribe(deviceId="d1")
    other = await login(world.client, ALICE_EMAIL, PASSWORD)
    await rest(world.client, "POST", "/v1/auth/logout", other["access_token"], 204)
    now = int(time.time())
    refused = [
        (world.alice_refresh, 401, "Invalid token: expected an access token"),
        (resign(world.alice, secret="another-secret-0123456789-abcdefghij"), 401, "Invalid token"),
        (resign(world.alice, iat=now - 7200, exp=now - 3600), 401, "Token expired"),
        (other["access_token"], 401, "Token revoked"),
        (world.alice.rsplit(".", 1)[0] + ".", 401, "Invalid token"),
        ("x" * 8192, 401, "Invalid token"),
        (world.bob, 403, "This socket belongs to another user; open a new connection"),
    ]
    for token, code, error in refused:
        await alice.fails("authenticate", code, error, token=token)
    await alice.fails("device/get", 403, "Device d2 is outside the token's scope", deviceId="d2")
    # Another session cannot end this one's subscription: ids are per socket.
    bob = await connect(world.client, world.bob)
    await bob.fails(
        "notification/unsubscribe", 404, f"Subscription {sub} not found", subscriptionId=sub
    )
    item = await insert(await connect(world.client, world.admin), "d1", "still")
    push = await alice.push()
    assert (push["subscriptionId"], push["notification"]["id"]) == (sub, item["id"])


async def test_duplicate_filters_collapse_and_a_foreign_network_is_refused(world: World) -> None:
    """Coverage: repeated ids and names in a subscribe count once; a network the client is
    not a member of is refused, alone or among its own."""
    alice = await connect(world.client, world.alice)
    sub = await alice.subscribe(networkIds=[world.n1, world.n1], names=["a", "a", "b"])
    [listed] = (await alice.ok("subscription/list"))["subscriptions"]
    assert listed == {
        "subscriptionId": sub,
        "type": "notification",
        "deviceId": None,
        "networkIds": [world.n1],
        "deviceTypeIds": None,
        "names": ["a", "b"],
    }
    for networks in ([world.n2], [world.n1, world.n2]):
        await alice.fails(
            "notification/subscribe",
            403,
            f"networkIds outside the token's scope: {world.n2}",
            networkIds=networks,
        )
    assert len((await alice.ok("subscription/list"))["subscriptions"]) == 1


async def test_a_clients_catch_all_replay_reads_only_its_own_networks(world: World) -> None:
    """A subscription with no device or network filter replayed by reading every network's
    rows and dropping, item by item, what the client may not see: PostgreSQL's work grew with
    every other tenant's traffic. The read now names the client's networks (an unscoped
    administrator's still reads them all)."""
    store = world.client.app[WIRING_KEY].realtime.messages.messages
    read_networks: list[object] = []
    since = store.since

    async def recording(*args: Any, **kwargs: Any) -> Any:
        read_networks.append(args[2].network_ids)
        return await since(*args, **kwargs)

    store.since = recording
    start = iso(time.time() - 60)
    alice = await connect(world.client, world.alice)
    bob = await connect(world.client, world.bob)
    theirs = await insert(bob, "d2", "theirs")
    mine = await insert(alice, "d1", "mine")

    await alice.subscribe("notification", timestamp=start)
    assert [(await alice.push())["notification"]["id"]] == [mine["id"]]
    assert read_networks == [frozenset({world.n1})]

    admin = await connect(world.client, world.admin)
    await admin.subscribe("notification", timestamp=start)
    seen = {(await admin.push())["notification"]["id"] for _ in range(2)}
    assert seen == {mine["id"], theirs["id"]}
    assert read_networks[1:] == [None]
    await alice.no_push()
