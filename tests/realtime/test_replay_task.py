"""A replay runs beside the socket's read loop: the session's other requests are answered while
it waits for PostgreSQL, and the live pushes it holds back count against the session's queue
limits. The replay's read is held up deterministically by a lock the test takes on the table."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg

from gateway.app import WIRING_KEY
from tests.conftest import AppFactory
from tests.realtime.helpers import build_world, connect, insert

SINCE = "2000-01-01T00:00:00Z"


@contextlib.asynccontextmanager
async def table_locked(database_url: str) -> AsyncIterator[None]:
    """Every read of ``notifications`` waits until this block ends."""
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE notifications IN ACCESS EXCLUSIVE MODE")
            yield
    finally:
        await conn.close()


async def test_the_socket_keeps_reading_while_a_replay_waits(
    make_client: AppFactory, clean_db: str
) -> None:
    client = await make_client()
    world = await build_world(client)
    peer = await connect(client, world.admin)
    await insert(peer, "d1", "stored")
    async with table_locked(clean_db):
        subscribing = await peer.send("notification/subscribe", deviceId="d1", timestamp=SINCE)
        assert (await peer.request("server/info"))["status"] == "success"
        # The subscription is live already (its pushes are held back until the replay ends).
        assert len((await peer.ok("subscription/list"))["subscriptions"]) == 1
        assert not peer.has_reply(subscribing)
    reply = await peer.reply(subscribing)
    assert reply["status"] == "success"
    assert (await peer.push())["notification"]["notification"] == "stored"


async def test_live_pushes_held_by_a_replay_count_against_the_queue_limit(
    make_client: AppFactory, clean_db: str
) -> None:
    """ws_queue_messages=5: five live pushes held back during the replay fit, a sixth closes
    the session as a slow consumer (4008), the publisher is unaffected."""
    client = await make_client(ws_queue_messages=5)
    world = await build_world(client)
    subscriber = await connect(client, world.alice)
    publisher = await connect(client, world.admin)
    async with table_locked(clean_db):
        await subscriber.send("notification/subscribe", deviceId="d1", timestamp=SINCE)
        # The subscription is live: pushes are held from now.
        assert len((await subscriber.ok("subscription/list"))["subscriptions"]) == 1
        hub = client.app[WIRING_KEY].hub
        for n in range(5):
            await insert(publisher, "d1", f"held{n}")
        assert not any(session.closing for session in hub.sessions.values())
        await insert(publisher, "d1", "one too many")
        assert await subscriber.closed() == (4008, "slow consumer: outbound queue full")
    assert await publisher.is_open()


async def test_held_pushes_follow_the_replay_in_order_without_duplicates(
    make_client: AppFactory, clean_db: str
) -> None:
    client = await make_client(ws_queue_messages=50)
    world = await build_world(client)
    subscriber = await connect(client, world.alice)
    publisher = await connect(client, world.admin)
    stored = [(await insert(publisher, "d1", f"stored{n}"))["id"] for n in range(3)]
    async with table_locked(clean_db):
        subscribing = await subscriber.send(
            "notification/subscribe", deviceId="d1", timestamp=SINCE
        )
        assert await subscriber.is_open()
        live = [(await insert(publisher, "d1", f"live{n}"))["id"] for n in range(3)]
    assert (await subscriber.reply(subscribing))["status"] == "success"
    pushes = await subscriber.pushes_n(6)
    assert [p["notification"]["id"] for p in pushes] == stored + live
    await subscriber.no_push()


async def test_unsubscribing_during_a_replay_drops_what_it_held(
    make_client: AppFactory, clean_db: str
) -> None:
    client = await make_client()
    world = await build_world(client)
    subscriber = await connect(client, world.alice)
    publisher = await connect(client, world.admin)
    async with table_locked(clean_db):
        subscribing = await subscriber.send(
            "notification/subscribe", deviceId="d1", timestamp=SINCE
        )
        listed = await subscriber.ok("subscription/list")
        assert len(listed["subscriptions"]) == 1
        await insert(publisher, "d1", "held")
        await subscriber.ok("notification/unsubscribe")
    # The read finished after the unsubscribe: the reply still comes, nothing is pushed.
    assert (await subscriber.reply(subscribing))["status"] == "success"
    await subscriber.no_push()


async def test_a_replay_whose_read_fails_is_an_error_reply_and_no_subscription(
    make_client: AppFactory, clean_db: str
) -> None:
    """The table is renamed away for a moment (nothing is written meanwhile): the subscribe's
    read fails, its reply is the error, the subscription is withdrawn and the session goes on."""
    client = await make_client()
    world = await build_world(client)
    peer = await connect(client, world.admin)
    conn = await asyncpg.connect(clean_db)
    try:
        await conn.execute("ALTER TABLE notifications RENAME TO notifications_away")
        try:
            await peer.fails(
                "notification/subscribe",
                500,
                "Internal server error",
                deviceId="d1",
                timestamp=SINCE,
            )
        finally:
            await conn.execute("ALTER TABLE notifications_away RENAME TO notifications")
    finally:
        await conn.close()
    assert (await peer.ok("subscription/list"))["subscriptions"] == []
    await insert(peer, "d1", "after")
    assert await peer.subscribe(deviceId="d1", timestamp=SINCE)
    assert (await peer.push())["notification"]["notification"] == "after"
