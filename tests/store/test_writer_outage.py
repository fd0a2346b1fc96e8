"""The writer against a PostgreSQL the test owns and stops: what waits is kept, retried and
written once it is back; shutdown during an outage gives up after its bound and says exactly
how much it lost, instead of raising or hanging."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from gateway.store.db import Pool, create_pool
from gateway.store.health import DatabaseHealth
from gateway.store.messages import ROOM_WAIT, MessageStore
from gateway.store.migrations import migrate
from tests.conftest import wait_for
from tests.store.test_writer import command, notification
from tests.support.servers import PostgresProcess


@pytest.fixture
async def own_pool(own_postgres: PostgresProcess) -> AsyncIterator[Pool]:
    conn = await asyncpg.connect(own_postgres.url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    pool = await create_pool(own_postgres.url, max_size=2)
    yield pool
    await pool.close()


async def test_what_waits_during_an_outage_is_written_when_it_ends(
    own_postgres: PostgresProcess, own_pool: Pool
) -> None:
    health = DatabaseHealth(own_pool)
    store = MessageStore(own_pool, interval=0.02, batch=100, health=health)
    store.start()
    try:
        await asyncio.to_thread(own_postgres.stop)
        for i in range(1, 51):
            store.add_notification(notification(i))
        await wait_for(lambda: health.down)
        assert store.pending_count == 50
        await asyncio.to_thread(own_postgres.start)
        await wait_for(lambda: store.pending_count == 0, timeout=5)
        assert not health.down
        assert await own_pool.fetchval("SELECT count(*) FROM notifications") == 50
        assert await own_pool.fetchval("SELECT count(*) FROM dead_letters") == 0
    finally:
        await store.close()


async def test_shutdown_during_an_outage_reports_exactly_what_it_lost(
    own_postgres: PostgresProcess, own_pool: Pool, caplog: pytest.LogCaptureFixture
) -> None:
    store = MessageStore(own_pool, interval=60, batch=100)
    store.start()
    for i in range(1, 4):
        store.add_notification(notification(i))
    store.put_command(command(4))
    await asyncio.to_thread(own_postgres.stop)

    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="gateway.store"):
        await store.close(bound=1.0)
    assert time.monotonic() - started < 3
    assert (
        "shutdown: 3 notifications and 1 commands were acknowledged but could not be written "
        "within 1 s: lost" in caplog.text
    )


async def test_inserts_waiting_for_the_writer_are_let_go_when_postgresql_stops(
    own_postgres: PostgresProcess, own_pool: Pool
) -> None:
    """Backpressure must not turn an outage into a second's wait per insert: once the writer
    fails, the store is no longer ``behind`` and a waiting insert goes on at once (to be
    admitted or refused at the bound); after the restart everything waiting is written."""
    health = DatabaseHealth(own_pool)
    store = MessageStore(own_pool, interval=0.05, batch=2, health=health)
    store.start()
    try:
        await asyncio.to_thread(own_postgres.stop)
        for i in range(1, 5):  # two full batches: the writer is woken and fails
            store.add_notification(notification(i))
        started = time.monotonic()
        await store.room()
        await wait_for(lambda: health.down)
        assert time.monotonic() - started < ROOM_WAIT
        assert not store.behind
        await asyncio.to_thread(own_postgres.start)
        await wait_for(lambda: store.pending_count == 0, timeout=5)
        assert await own_pool.fetchval("SELECT count(*) FROM notifications") == 4
    finally:
        await store.close()
