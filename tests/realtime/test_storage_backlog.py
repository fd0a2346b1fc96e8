"""Beyond GATEWAY_PERSIST_MAX_PENDING items waiting to be written, an insert is refused with code
503 (not acknowledged and then dropped), and the refusals do not end the session. Before that,
a writer that is behind slows inserts down instead."""

from __future__ import annotations

import asyncpg
import pytest

from gateway.store.messages import ROOM_WAIT
from tests.conftest import AppFactory
from tests.realtime.helpers import build_world, connect, insert_big


async def test_inserts_beyond_the_pending_cap_get_503_and_the_session_goes_on(
    make_client: AppFactory, clean_db: str
) -> None:
    # A writer that waits a minute: what is acknowledged stays pending for the whole test.
    client = await make_client(persist_interval=60.0, persist_max_pending=3, ws_max_errors=5)
    world = await build_world(client)
    peer = await connect(client, world.admin)
    for n in range(3):
        await peer.ok("notification/insert", deviceId="d1", notification={"notification": f"{n}"})
    command = await peer.request("command/insert", deviceId="d1", command={"command": "go"})
    assert command == {
        "action": "command/insert",
        "requestId": command["requestId"],
        "status": "error",
        "code": 503,
        "error": "Storage is behind; retry later",
    }
    for _ in range(10):  # more than ws_max_errors: the gateway's trouble, not the client's
        refused = await peer.request(
            "notification/insert", deviceId="d1", notification={"notification": "late"}
        )
        assert (refused["status"], refused["code"]) == ("error", 503)
    assert (await peer.request("server/info"))["status"] == "success"

    await client.close()  # shutdown writes what was acknowledged, and only that
    conn = await asyncpg.connect(clean_db)
    try:
        stored = await conn.fetch("SELECT notification FROM notifications ORDER BY id")
        assert [row["notification"] for row in stored] == ["0", "1", "2"]
        assert await conn.fetchval("SELECT count(*) FROM commands") == 0
    finally:
        await conn.close()


async def test_inserts_beyond_the_pending_bytes_get_503_and_what_was_acked_is_stored(
    make_client: AppFactory, clean_db: str
) -> None:
    """The count alone bounded the backlog: big payloads held memory without limit while
    storage was behind. Four 20 KB notifications fit in 100 KB, the fifth does not; a small
    one still does."""
    client = await make_client(persist_interval=60.0, persist_max_pending_bytes=100_000)
    world = await build_world(client)
    peer = await connect(client, world.admin)
    await insert_big(peer, ["0", "1", "2", "3"], 20_000)
    refused = await peer.request(
        "notification/insert",
        deviceId="d1",
        notification={"notification": "big", "parameters": {"blob": "x" * 20_000}},
    )
    assert refused == {
        "action": "notification/insert",
        "requestId": refused["requestId"],
        "status": "error",
        "code": 503,
        "error": "Storage is behind; retry later",
    }
    await peer.ok("notification/insert", deviceId="d1", notification={"notification": "small"})

    await client.close()
    conn = await asyncpg.connect(clean_db)
    try:
        stored = await conn.fetch("SELECT notification FROM notifications ORDER BY id")
        assert [row["notification"] for row in stored] == ["0", "1", "2", "3", "small"]
    finally:
        await conn.close()


async def test_inserts_beyond_two_batches_on_a_busy_writer_wait_for_it_instead_of_503(
    make_client: AppFactory, clean_db: str
) -> None:
    """A flood while the writer is stuck in a slow commit (here: its table locked) is slowed,
    not refused: two batches are acknowledged at once, the next insert's acknowledgement waits
    until the writer has written, and then every insert is acknowledged and stored."""
    client = await make_client(persist_interval=0.01, persist_batch=2)
    world = await build_world(client)
    peer = await connect(client, world.admin)
    locker = await asyncpg.connect(clean_db)
    try:
        transaction = locker.transaction()
        await transaction.start()
        await locker.execute("LOCK TABLE notifications IN EXCLUSIVE MODE")
        first = [
            await peer.send(
                "notification/insert", deviceId="d1", notification={"notification": f"{n}"}
            )
            for n in range(4)
        ]
        for request_id in first:
            assert (await peer.reply(request_id))["status"] == "success"
        waiting = await peer.send(
            "notification/insert", deviceId="d1", notification={"notification": "4"}
        )
        with pytest.raises(TimeoutError):
            await peer.reply(waiting, timeout=ROOM_WAIT / 4)
        await transaction.rollback()
        assert (await peer.reply(waiting))["status"] == "success"
    finally:
        await locker.close()
    await client.close()
    conn = await asyncpg.connect(clean_db)
    try:
        assert await conn.fetchval("SELECT count(*) FROM notifications") == 5
    finally:
        await conn.close()
