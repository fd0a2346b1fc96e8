"""Shutdown: every live socket gets 1001 after the frames already queued for it."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.conftest import AppFactory
from tests.realtime.helpers import build_world, connect, insert


async def test_shutdown_sends_1001_to_every_socket(make_client: AppFactory) -> None:
    client = await make_client()
    world = await build_world(client)
    subscriber = await connect(client, world.alice)
    sub = await subscriber.subscribe(deviceId="d1")
    anonymous = await connect(client)
    publisher = await connect(client, world.admin)
    item = await insert(publisher, "d1", "last")

    # Read concurrently: the server waits for each client's answer to its close frame.
    readers = [
        asyncio.create_task(peer.closed(timeout=10)) for peer in (subscriber, anonymous, publisher)
    ]
    await asyncio.wait_for(client.server.close(), 15)
    results = await asyncio.wait_for(asyncio.gather(*readers), 10)
    assert results == [(1001, "server shutting down")] * 3
    # The push queued before the shutdown was delivered before the close.
    assert [(p["subscriptionId"], p["notification"]["id"]) for p in subscriber.pushes] == [
        (sub, item["id"])
    ]


async def test_shutdown_writes_acknowledged_messages(
    make_client: AppFactory, clean_db: str
) -> None:
    """persist_interval=5: nothing is written by the timer; the shutdown writes the batch."""
    client = await make_client(persist_interval=5)
    world = await build_world(client)
    publisher = await connect(client, world.admin)
    item = await insert(publisher, "d1", "pending", {"k": 1})
    command = (await publisher.ok("command/insert", deviceId="d1", command={"command": "go"}))[
        "command"
    ]
    await publisher.ok(
        "command/update", deviceId="d1", commandId=command["id"], command={"status": "done"}
    )
    conn = await asyncpg.connect(clean_db)
    try:
        assert await conn.fetchval("SELECT count(*) FROM notifications") == 0
        reader = asyncio.create_task(publisher.closed(timeout=10))
        await asyncio.wait_for(client.server.close(), 15)
        assert await reader == (1001, "server shutting down")
        row = await conn.fetchrow("SELECT id, notification, parameters FROM notifications")
        assert row is not None
        assert dict(row) == {"id": item["id"], "notification": "pending", "parameters": '{"k": 1}'}
        row = await conn.fetchrow("SELECT id, command, status FROM commands")
        assert row is not None
        assert dict(row) == {"id": command["id"], "command": "go", "status": "done"}
    finally:
        await conn.close()
