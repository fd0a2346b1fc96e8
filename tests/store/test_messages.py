"""The message repository: ids in blocks, acknowledged items pending until their batch is
written, the history a replay reads, and retention."""

from __future__ import annotations

import asyncio
import time

from gateway.store.db import Pool
from gateway.store.ids import BLOCK
from gateway.store.messages import MessageStore
from gateway.store.stored import Selection
from gateway.types import COMMAND, NOTIFICATION, Command, Notification


def _notification(
    item_id: int, name: str = "temp", at: float | None = None, **fields: object
) -> Notification:
    values: dict[str, object] = {
        "device_id": "d1",
        "network_id": 1,
        "device_type_id": None,
        "parameters": {"v": item_id},
    }
    values.update(fields)
    return Notification(
        id=item_id,
        notification=name,
        timestamp=time.time() if at is None else at,
        **values,  # type: ignore[arg-type]
    )


def _command(item_id: int, at: float, status: str | None = None) -> Command:
    return Command(
        id=item_id,
        device_id="d1",
        network_id=1,
        device_type_id=None,
        user_id=7,
        command="reboot",
        parameters=None,
        lifetime=None,
        status=status,
        result=None,
        timestamp=at,
        last_updated=at,
    )


def _store(pool: Pool, batch: int = 100) -> MessageStore:
    return MessageStore(pool, interval=0.02, batch=batch)


async def test_ids_are_unique_across_stores_and_blocks(pool: Pool) -> None:
    first, second = _store(pool), _store(pool)
    ids = [await first.next_id() for _ in range(1500)] + [await second.next_id() for _ in range(10)]
    assert len(set(ids)) == len(ids)
    assert ids[:1500] == sorted(ids[:1500])


async def test_take_id_numbers_without_waiting_until_the_block_is_used_up(pool: Pool) -> None:
    store = _store(pool)
    assert store.take_id() is None  # no block yet: next_id fetches one
    first = await store.next_id()
    taken = [store.take_id() for _ in range(BLOCK - 1)]
    assert taken == list(range(first + 1, first + BLOCK))
    assert store.take_id() is None
    assert await store.next_id() >= first + BLOCK


async def test_an_item_is_pending_until_its_batch_is_written(pool: Pool) -> None:
    store = _store(pool)
    item = _notification(await store.next_id())
    store.add_notification(item)
    assert store.pending(NOTIFICATION) == [item]
    assert await store.since(NOTIFICATION, 0, Selection(), limit=10) == []
    await store.flush()
    assert store.pending(NOTIFICATION) == []
    [stored] = await store.since(NOTIFICATION, 0, Selection(), limit=10)
    assert stored.id == item.id and stored.parameters == item.parameters
    assert abs(stored.timestamp - item.timestamp) < 1e-5


async def test_history_is_filtered_ordered_and_bounded(pool: Pool) -> None:
    store = _store(pool)
    base = time.time() - 60
    items = [
        _notification(1, "temp", base + 3),
        _notification(2, "temp", base + 1, device_id="d2"),
        _notification(3, "door", base + 2, network_id=2),
        _notification(4, "temp", base - 10),
    ]
    for item in items:
        store.add_notification(item)
    await store.flush()

    async def ids(selection: Selection, limit: int = 10) -> list[int]:
        return [item.id for item in await store.since(NOTIFICATION, base, selection, limit=limit)]

    assert await ids(Selection()) == [2, 3, 1]
    assert await ids(Selection(device_ids=["d1"])) == [3, 1]
    assert await ids(Selection(network_ids=[2])) == [3]
    assert await ids(Selection(names=["temp"])) == [2, 1]
    assert await ids(Selection(), limit=1) == [2]


async def test_the_latest_state_of_a_command_is_what_is_written(pool: Pool) -> None:
    store = _store(pool)
    now = time.time()
    command = _command(await store.next_id(), now)
    store.put_command(command)
    assert await store.get_command(command.id) == command
    done = command.updated("done", {"ok": True}, now + 1)
    store.put_command(done)
    assert store.pending(COMMAND) == [done]
    await store.flush()
    stored = await store.get_command(command.id)
    assert stored is not None and (stored.status, stored.result) == ("done", {"ok": True})


async def test_an_older_state_never_overwrites_a_newer_one(pool: Pool) -> None:
    store = _store(pool)
    now = time.time()
    command = _command(await store.next_id(), now)
    store.put_command(command.updated("done", None, now + 2))
    await store.flush()
    store.put_command(command.updated("running", None, now + 1))
    await store.flush()
    stored = await store.get_command(command.id)
    assert stored is not None and stored.status == "done"
    assert await store.get_command(999_999_999) is None


async def test_the_writer_writes_within_its_interval_and_close_writes_the_rest(
    pool: Pool,
) -> None:
    store = _store(pool, batch=2)
    store.start()
    store.add_notification(_notification(await store.next_id()))
    async with asyncio.timeout(5):
        while store.pending(NOTIFICATION):
            await asyncio.sleep(0.01)
    for _ in range(5):
        store.add_notification(_notification(await store.next_id()))
    await store.close()
    assert store.pending(NOTIFICATION) == []
    assert await pool.fetchval("SELECT count(*) FROM notifications") == 6


async def test_purge_forgets_what_is_older_than_the_retention(pool: Pool) -> None:
    store = _store(pool)
    now = time.time()
    store.add_notification(_notification(1, at=now - 100))
    store.add_notification(_notification(2, at=now))
    store.put_command(_command(3, now - 100))
    store.put_command(_command(4, now))
    await store.flush()
    await store.purge(now - 50, now + 86400)
    assert [r["id"] for r in await pool.fetch("SELECT id FROM notifications")] == [2]
    assert [r["id"] for r in await pool.fetch("SELECT id FROM commands")] == [4]


def test_a_selection_matches_by_device_network_and_name_and_none_means_any() -> None:
    notification = Notification(1, "d1", 2, None, "temp", None, 0.0)
    command = Command(2, "d1", 2, None, 7, "reboot", None, None, None, None, 0.0, 0.0)
    assert Selection().matches(notification) and Selection().matches(command)
    assert Selection(device_ids=["d1"], network_ids=[2], names=["temp"]).matches(notification)
    assert not Selection(device_ids=["d2"]).matches(notification)
    assert not Selection(network_ids=[3]).matches(notification)
    assert not Selection(names=["temp"]).matches(command)
    assert Selection(names=["reboot"]).matches(command)
