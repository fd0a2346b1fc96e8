"""The batch writer against a real PostgreSQL: a row PostgreSQL refuses goes to dead_letters and
never stops the rest; pending items are capped; a failed id block is asked for again."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import weakref
from typing import Any

import asyncpg
import pytest

from gateway.errors import Unavailable
from gateway.store.db import Pool
from gateway.store.health import DatabaseHealth
from gateway.store.ids import BLOCK, IdBlocks
from gateway.store.messages import ROOM_WAIT, MessageStore
from gateway.store.stored import Selection
from gateway.types import Command, Notification
from tests.conftest import wait_for

SECRET = "eyJhbGciOiJIUzI1NiJ9.secret-token-bytes"
"""Client data in a refused row: it must reach dead_letters, never the log."""


def notification(id: int, **changes: Any) -> Notification:
    fields: dict[str, Any] = {
        "id": id,
        "device_id": "dev-1",
        "network_id": 1,
        "device_type_id": None,
        "notification": "temperature",
        "parameters": {"value": id},
        "timestamp": time.time(),
    }
    return Notification(**(fields | changes))


def command(id: int, **changes: Any) -> Command:
    now = time.time()
    fields: dict[str, Any] = {
        "id": id,
        "device_id": "dev-1",
        "network_id": 1,
        "device_type_id": None,
        "user_id": 1,
        "command": "reboot",
        "parameters": None,
        "lifetime": 60,
        "status": None,
        "result": None,
        "timestamp": now,
        "last_updated": now,
    }
    return Command(**(fields | changes))


def nested(depth: int) -> Any:
    value: Any = SECRET
    for _ in range(depth):
        value = [value]
    return value


async def test_rows_postgresql_refuses_go_to_dead_letters_and_the_rest_is_written(
    pool: Pool, caplog: pytest.LogCaptureFixture
) -> None:
    store = MessageStore(pool, interval=0.02, batch=100)
    bad_notifications = {
        7: notification(7, parameters={"deep": nested(300), "token": SECRET}),  # orjson: > 254
        23: notification(23, notification="nul\x00" + SECRET),  # text cannot hold NUL
    }
    for i in range(1, 41):
        store.add_notification(bad_notifications.get(i) or notification(i))
    store.put_command(command(101))
    store.put_command(command(102, lifetime=3_000_000_000, parameters={"token": SECRET}))
    store.put_command(command(103))

    with caplog.at_level(logging.INFO):
        await store.flush()

    assert store.pending_count == 0
    stored = await pool.fetch("SELECT id FROM notifications ORDER BY id")
    assert [row["id"] for row in stored] == [i for i in range(1, 41) if i not in (7, 23)]
    commands = await pool.fetch("SELECT id FROM commands ORDER BY id")
    assert [row["id"] for row in commands] == [101, 103]
    dead = await pool.fetch("SELECT kind, message_id, payload, error FROM dead_letters ORDER BY id")
    assert sorted((row["kind"], row["message_id"]) for row in dead) == [
        ("command", 102),
        ("notification", 7),
        ("notification", 23),
    ]
    by_id = {row["message_id"]: row for row in dead}
    assert "3000000000" in by_id[102]["payload"] and "int32" in by_id[102]["error"]
    assert SECRET in by_id[7]["payload"]
    assert "\\u0000" in by_id[23]["payload"]
    assert store.writer.dead_lettered == 3
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for message_id in (7, 23, 102):
        assert f" {message_id} could not be stored" in logged
    assert SECRET not in caplog.text


async def test_a_batch_written_again_after_a_lost_commit_reply_duplicates_nothing(
    pool: Pool,
) -> None:
    """The plain insert meets the rows of a commit whose reply was lost; the batch is written
    again without them, and a bad row in it still goes alone to dead_letters."""
    committed = MessageStore(pool, interval=0.02, batch=100)
    for i in range(1, 21):
        committed.add_notification(notification(i, notification="first"))
    await committed.flush()

    store = MessageStore(pool, interval=0.02, batch=100)
    for i in range(1, 41):
        bad = i == 30
        store.add_notification(
            notification(i, parameters={"deep": nested(300)}) if bad else notification(i)
        )
    await store.flush()

    assert store.pending_count == 0
    rows = await pool.fetch("SELECT id, notification FROM notifications ORDER BY id")
    assert [row["id"] for row in rows] == [i for i in range(1, 41) if i != 30]
    assert {row["notification"] for row in rows if row["id"] <= 20} == {"first"}
    dead = await pool.fetch("SELECT kind, message_id FROM dead_letters")
    assert [(row["kind"], row["message_id"]) for row in dead] == [("notification", 30)]


async def test_items_no_table_takes_stay_pending_until_one_does(pool: Pool) -> None:
    """A fault of the schema, not of the rows (here every notification refused and
    dead_letters gone): the items were each logged as lost once PostgreSQL answered SELECT 1.
    They now stay pending, the batch fails (the writer retries it) and nothing is lost."""
    store = MessageStore(pool, interval=0.02, batch=100)
    for i in range(1, 6):
        store.add_notification(notification(i))
    await pool.execute(
        "ALTER TABLE notifications ADD CONSTRAINT refuse_all CHECK (id < 0) NOT VALID"
    )
    await pool.execute("ALTER TABLE dead_letters RENAME TO dead_letters_away")
    try:
        with pytest.raises(asyncpg.UndefinedTableError):
            await store.flush()
        assert store.pending_count == 5
        assert store.writer.lost == 0
    finally:
        await pool.execute("ALTER TABLE dead_letters_away RENAME TO dead_letters")
        await pool.execute("ALTER TABLE notifications DROP CONSTRAINT refuse_all")
    await store.flush()
    assert store.pending_count == 0
    assert await pool.fetchval("SELECT array_agg(id ORDER BY id) FROM notifications") == [
        1,
        2,
        3,
        4,
        5,
    ]
    assert await pool.fetchval("SELECT count(*) FROM dead_letters") == 0


async def test_a_message_after_a_refused_one_is_stored_by_the_running_writer(pool: Pool) -> None:
    store = MessageStore(pool, interval=0.02, batch=100)
    store.start()
    try:
        store.put_command(command(1, lifetime=3_000_000_000))
        store.add_notification(notification(2))
        await wait_for(lambda: store.pending_count == 0)
        assert await pool.fetchval("SELECT count(*) FROM notifications WHERE id = 2") == 1
        assert await pool.fetchval("SELECT count(*) FROM dead_letters") == 1
    finally:
        await store.close()


async def test_beyond_max_pending_new_items_are_refused_but_updates_are_kept(pool: Pool) -> None:
    store = MessageStore(pool, interval=60, batch=100, max_pending=3)
    store.add_notification(notification(1))
    store.put_command(command(2))
    store.add_notification(notification(3))

    with pytest.raises(Unavailable) as refused:
        store.add_notification(notification(4))
    assert (refused.value.status, refused.value.retry_after) == (503, 1)
    with pytest.raises(Unavailable):
        store.put_command(command(5))
    store.put_command(command(2, status="done"))  # a new state of a pending command
    assert store.pending_count == 3
    assert store.refused == 2

    await store.close()
    assert store.pending_count == 0
    assert store.pending("command") == []
    assert await pool.fetchval("SELECT status FROM commands WHERE id = 2") == "done"
    with pytest.raises(Unavailable):
        store.add_notification(notification(6))


async def test_beyond_max_pending_bytes_new_items_are_refused_and_written_ones_free_room(
    pool: Pool,
) -> None:
    """Only the item count was bounded: 100,000 pending items of 1 MiB (a REST body) while
    PostgreSQL was away would have held 100 GB before a single refusal."""
    big = {"blob": "x" * 990}  # 1,001 bytes as JSON, plus the 11 of the name
    store = MessageStore(pool, interval=60, batch=100, max_pending_bytes=3000)
    store.add_notification(notification(1, parameters=big))
    store.put_command(command(2, parameters=big))  # 1,001 + 6
    assert store.pending_bytes == 2019
    with pytest.raises(Unavailable) as refused:
        store.add_notification(notification(3, parameters=big))
    assert (refused.value.status, refused.value.retry_after) == (503, 1)
    store.add_notification(notification(4, parameters={"small": 1}))  # 11 + 11: room for it
    store.put_command(command(2, parameters=big, result=big))  # a new state: kept, counted
    assert (store.pending_count, store.pending_bytes, store.refused) == (3, 3042, 1)

    await store.flush()
    assert (store.pending_count, store.pending_bytes) == (0, 0)
    store.add_notification(notification(5, parameters=big))
    assert await pool.fetchval("SELECT count(*) FROM notifications WHERE id IN (1, 4)") == 2
    await store.close()


async def test_one_item_bigger_than_max_pending_bytes_is_kept_when_nothing_waits(
    pool: Pool,
) -> None:
    store = MessageStore(pool, interval=60, batch=100, max_pending_bytes=100)
    store.add_notification(notification(1, parameters={"blob": "x" * 500}))
    with pytest.raises(Unavailable):
        store.add_notification(notification(2, parameters={"n": 1}))
    await store.close()
    assert await pool.fetchval("SELECT count(*) FROM notifications") == 1


async def test_close_writes_everything_pending_and_says_so(
    pool: Pool, caplog: pytest.LogCaptureFixture
) -> None:
    store = MessageStore(pool, interval=60, batch=7)
    store.start()
    for i in range(1, 51):
        store.add_notification(notification(i))
    with caplog.at_level(logging.INFO, logger="gateway.store"):
        await store.close()
    assert await pool.fetchval("SELECT count(*) FROM notifications") == 50
    assert "every acknowledged notification and command is written" in caplog.text


async def test_a_failed_id_block_is_asked_for_again(pool: Pool) -> None:
    """The prefetch of the next block fails (the sequence is gone for a moment); once it is
    back, numbering goes on without a restart."""
    ids = IdBlocks(pool)
    first = await ids.next_id()
    await pool.execute("ALTER SEQUENCE message_id_blocks RENAME TO message_id_blocks_away")
    try:
        for _ in range(BLOCK - 1):  # half-way the prefetch starts, and fails
            await ids.next_id()
        with pytest.raises(asyncpg.UndefinedTableError):
            await ids.next_id()
        with pytest.raises(asyncpg.UndefinedTableError):
            await ids.next_id()
    finally:
        await pool.execute("ALTER SEQUENCE message_id_blocks_away RENAME TO message_id_blocks")
    after = await ids.next_id()
    assert after >= first + BLOCK
    assert await ids.next_id() == after + 1


async def test_stored_times_python_cannot_hold_neither_break_reads_nor_escape_retention(
    pool: Pool,
) -> None:
    store = MessageStore(pool, interval=60, batch=100)
    now = time.time()
    await pool.execute(
        """INSERT INTO notifications (id, device_id, network_id, notification, "timestamp")
           VALUES (1, 'dev-1', 1, 'far', '10000-01-01T00:00:00Z'),
                  (2, 'dev-1', 1, 'old', now() - interval '40 days'),
                  (3, 'dev-1', 1, 'now', now())"""
    )
    await pool.execute(
        """INSERT INTO commands (id, device_id, network_id, command, "timestamp", last_updated)
           VALUES (4, 'dev-1', 1, 'far', '10000-01-01Z', '10000-01-01Z')"""
    )
    replayed = await store.since("notification", now - 86400, Selection(), limit=10)
    assert [item.id for item in replayed] == [3, 1]
    assert replayed[1].to_json()["timestamp"] == "9999-12-31T23:59:59.999Z"
    far_command = await store.get_command(4)
    assert far_command is not None and far_command.to_json()["lastUpdated"].startswith("9999")

    deleted = await store.purge(now - 30 * 86400, now + 30 * 86400)

    assert deleted == 3
    assert await pool.fetchval("SELECT array_agg(id) FROM notifications") == [3]
    assert await pool.fetchval("SELECT count(*) FROM commands") == 0


async def test_a_notification_batch_stores_every_field_as_given(pool: Pool) -> None:
    """The batch travels as one JSON document: each field must come out as it went in (absent
    parameters as SQL NULL, not JSON null; text and nested values unchanged; microseconds)."""
    store = MessageStore(pool, interval=0.02, batch=100)
    at = 1_795_000_000.123456
    items = [
        notification(1, parameters=None, timestamp=at),
        notification(2, parameters={"a": [1, 2.5, None, True], "é": "ü\n\"'"}, device_type_id=9),
        notification(3, parameters=[], notification='quote"back\\slash ✓', network_id=2**40),
        notification(4, parameters="just a string", device_id="dev_2-x"),
    ]
    for item in items:
        store.add_notification(item)
    await store.flush()
    rows = {
        row["id"]: row
        for row in await pool.fetch(
            'SELECT *, parameters IS NULL AS absent, extract(epoch FROM "timestamp") AS epoch'
            " FROM notifications ORDER BY id"
        )
    }
    assert rows[1]["absent"] and not rows[2]["absent"]
    assert float(rows[1]["epoch"]) == pytest.approx(at, abs=1e-6)
    for item in items:
        row = rows[item.id]
        assert (
            row["device_id"],
            row["network_id"],
            row["device_type_id"],
            row["notification"],
            row["parameters"],
        ) == (
            item.device_id,
            item.network_id,
            item.device_type_id,
            item.notification,
            item.parameters,
        )


_LOCK_WAITS = """SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
                  WHERE NOT l.granted AND d.datname = current_database()"""


async def test_numbering_goes_on_while_the_sequence_is_locked_once_the_rate_is_known(
    pool: Pool,
) -> None:
    """``nextval`` can wait (a WAL fsync, a lock): with blocks used quickly, enough spare ones
    are in hand that inserts never wait for it."""
    ids = IdBlocks(pool)
    first = await ids.next_id()
    for _ in range(2 * BLOCK):  # two blocks used at once: the reserve is sized for this rate
        await ids.next_id()
    async with pool.acquire() as locker:
        transaction = locker.transaction()
        await transaction.start()
        await locker.execute("ALTER SEQUENCE message_id_blocks INCREMENT BY 1000")
        try:
            taken = [ids.take() for _ in range(BLOCK)]  # a refill starts, and waits
            while not await pool.fetchval(_LOCK_WAITS):
                await asyncio.sleep(0.01)  # PostgreSQL has no event for a lock wait
            taken += [ids.take() for _ in range(5 * BLOCK)]
        finally:
            await transaction.rollback()
    await ids.close()
    assert None not in taken
    numbers = [n for n in taken if n is not None]
    assert numbers == sorted(set(numbers))
    assert numbers[0] > first


async def test_an_insert_waits_for_a_writer_that_is_behind_instead_of_being_refused(
    pool: Pool,
) -> None:
    """With ids always in hand, a flood filled the backlog to its bound while the writer was
    busy, and most inserts got 503. Two batches waiting on a writer that writes: the next
    insert waits for it (its session is not read meanwhile), and goes on once it caught up."""
    store = MessageStore(pool, interval=0.01, batch=2, max_pending=5)
    store.start()
    async with pool.acquire() as locker:
        transaction = locker.transaction()
        await transaction.start()
        await locker.execute("LOCK TABLE notifications IN EXCLUSIVE MODE")
        try:
            for i in range(1, 5):
                store.add_notification(notification(i))
            assert store.behind
            waiting = asyncio.create_task(store.room())
            done, _ = await asyncio.wait({waiting}, timeout=ROOM_WAIT / 4)
            assert not done
        finally:
            started = time.monotonic()
            await transaction.rollback()
    await waiting
    assert time.monotonic() - started < ROOM_WAIT / 2
    assert not store.behind
    await store.close()
    assert await pool.fetchval("SELECT count(*) FROM notifications") == 4


async def test_a_failing_writer_is_not_waited_for(pool: Pool) -> None:
    """An outage is refused at the bound at once, not after a wait per insert."""
    health = DatabaseHealth(pool)
    store = MessageStore(pool, interval=0.01, batch=2, max_pending=5, health=health)
    store.start()
    for i in range(1, 5):
        store.add_notification(notification(i))
    health.failed(ConnectionRefusedError("PostgreSQL is away"))
    assert not store.behind
    await store.close()


class _QueuesACallerAsTheBlocksArrive:
    """The real pool; as the block query's rows come back, it queues another caller of
    ``next_id`` in that very loop step: after the request's own end, ahead of anything the end
    schedules (as an insert read from a socket in the same step is)."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.ids: IdBlocks | None = None
        self.late: list[asyncio.Task[int]] = []

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        rows = await self.pool.fetch(query, *args)
        if self.ids is not None and not self.late:
            self.late.append(asyncio.get_running_loop().create_task(self.ids.next_id()))
        return rows


@pytest.mark.timeout(15)
async def test_a_caller_in_the_step_a_block_arrives_in_gets_an_id_and_the_loop_goes_on(
    pool: Pool,
) -> None:
    """Two instances under a flood hung at 100% CPU after exactly 2,000 ids each. A block
    request's rows were put in hand by a done callback; an insert that ran between the
    request's end and that callback found the request finished, awaited it (a finished task
    returns without yielding), found no id, and looped: the event loop never ran again."""
    racing = _QueuesACallerAsTheBlocksArrive(pool)
    ids = IdBlocks(racing)  # type: ignore[arg-type]
    racing.ids = ids
    first = await asyncio.wait_for(ids.next_id(), 5)
    [late] = racing.late
    second = await asyncio.wait_for(late, 5)
    assert sorted((first, second)) == [min(first, second), min(first, second) + 1]
    await ids.close()


async def test_a_failed_id_block_request_whose_callers_all_left_is_not_reported_unretrieved(
    pool: Pool, caplog: pytest.LogCaptureFixture
) -> None:
    """The only caller of a block request is cancelled (its session closed) and the request then
    fails: nobody raises its error, and asyncio would log "Task exception was never retrieved"
    with a traceback when the task is collected."""
    ids = IdBlocks(pool)
    await pool.execute("ALTER SEQUENCE message_id_blocks RENAME TO message_id_blocks_away")
    try:
        caller = asyncio.create_task(ids.next_id())
        await asyncio.sleep(0)  # it asked for a block and waits on the request
        request = ids._taking
        assert request is not None
        caller.cancel()
        await asyncio.wait({request})
        assert request.done() and not request.cancelled()  # it failed (not asked: that retrieves)
    finally:
        await pool.execute("ALTER SEQUENCE message_id_blocks_away RENAME TO message_id_blocks")
    collected = weakref.ref(request)
    del request, caller  # the cancelled caller's last frame holds the request
    gc.collect()
    assert collected() is None
    assert "never retrieved" not in caplog.text
