"""Inserting notifications, on the hot path and the awaited one; the history a replay reads:
stored items in chunks bounded in count and in bytes."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from gateway.app import WIRING_KEY
from gateway.devices.messages import REPLAY_CHUNK_BYTES, Item
from gateway.errors import Forbidden
from gateway.store.stored import Selection
from tests.conftest import AppFactory
from tests.realtime.helpers import build_world, put_device


async def _replay_reads(client: Any) -> list[list[Item]]:
    """What each read of a replay of d1's notifications since 999,999 s (epoch) returns."""
    messages = client.app[WIRING_KEY].realtime.messages
    history = await messages.history("notification", 999_999.0, Selection(device_ids=["d1"]))
    chunks = []
    while (chunk := await history.next_page()) is not None:
        chunks.append(chunk)
    return chunks


async def test_a_replay_reads_big_items_a_few_at_a_time_and_misses_none(
    make_client: AppFactory, clean_db: str
) -> None:
    """A hundred items were read whole at once, however big: a hundred of a megabyte each was
    100 MB in memory for one replay. Now a read stops at REPLAY_CHUNK_BYTES of payload."""
    client = await make_client(persist_interval=60.0)
    world = await build_world(client)
    blob = REPLAY_CHUNK_BYTES // 4 - 64  # four fit in one read, five do not
    conn = await asyncpg.connect(clean_db)
    try:
        await conn.execute(
            """INSERT INTO notifications
               (id, device_id, network_id, device_type_id, notification, parameters, "timestamp")
               SELECT 20000000 + n, 'd1', $1, 1, 'big',
                      CASE WHEN n <= 10 THEN jsonb_build_object('blob', repeat('x', $2))
                           ELSE '{"small": true}'::jsonb END,
                      to_timestamp(1000000 + n)
               FROM generate_series(1, 13) AS n""",
            world.n1,
            blob,
        )
    finally:
        await conn.close()
    chunks = await _replay_reads(client)
    assert [len(chunk) for chunk in chunks] == [4, 4, 5]
    items = [item for chunk in chunks for item in chunk]
    assert [item.id for item in items] == list(range(20000001, 20000014))
    assert [len(item.parameters.get("blob", "")) for item in items[:10]] == [blob] * 10
    assert items[-1].parameters == {"small": True}


async def test_an_item_bigger_than_the_read_budget_is_read_alone(
    make_client: AppFactory, clean_db: str
) -> None:
    client = await make_client(persist_interval=60.0)
    world = await build_world(client)
    conn = await asyncpg.connect(clean_db)
    try:
        await conn.execute(
            """INSERT INTO notifications
               (id, device_id, network_id, device_type_id, notification, parameters, "timestamp")
               SELECT 30000000 + n, 'd1', $1, 1, 'huge',
                      jsonb_build_object('blob', repeat('y', $2)), to_timestamp(1000000 + n)
               FROM generate_series(1, 3) AS n""",
            world.n1,
            REPLAY_CHUNK_BYTES,
        )
    finally:
        await conn.close()
    chunks = await _replay_reads(client)
    assert [[item.id for item in chunk] for chunk in chunks] == [[30000001], [30000002], [30000003]]


async def test_the_hot_path_inserts_from_the_caches_or_does_nothing_for_the_awaited_one(
    make_client: AppFactory,
) -> None:
    """``insert_notification_now`` answers without a coroutine when the device is cached and an
    id is in hand; when it must wait it returns None having taken no id and queued nothing, so
    the awaited path that follows numbers and stores the item as if it had run alone."""
    client = await make_client(persist_interval=60.0)
    world = await build_world(client)
    wiring = client.app[WIRING_KEY]
    messages, store = wiring.realtime.messages, wiring.realtime.messages.messages
    admin = wiring.auth.authenticate(world.admin)

    assert messages.insert_notification_now(admin, "d1", "first", None, None) is None  # no id yet
    assert store.pending("notification") == []
    first = await messages.insert_notification(admin, "d1", "first", {"n": 1}, None)
    second = messages.insert_notification_now(admin, "d1", "second", {"n": 2}, 1_000_000.5)
    assert second is not None
    assert (second.id, second.device_id, second.network_id, second.device_type_id) == (
        first.id + 1,
        "d1",
        world.n1,
        1,
    )
    assert (second.notification, second.parameters, second.timestamp) == (
        "second",
        {"n": 2},
        1_000_000.5,
    )
    assert [item.id for item in store.pending("notification")] == [first.id, second.id]

    assert messages.insert_notification_now(admin, "d-uncached", "x", None, None) is None
    store.batch = 1  # two items pending on a writer that is writing: it is behind
    assert messages.insert_notification_now(admin, "d1", "third", None, None) is None
    store.batch = 1000
    third = messages.insert_notification_now(admin, "d1", "third", None, None)
    assert third is not None and third.id == second.id + 1


async def test_the_hot_path_refuses_what_the_awaited_path_refuses(make_client: AppFactory) -> None:
    client = await make_client(persist_interval=60.0)
    world = await build_world(client)
    await put_device(client, world.admin, "d9", world.n1, None, isBlocked=True)
    wiring = client.app[WIRING_KEY]
    messages = wiring.realtime.messages
    admin = wiring.auth.authenticate(world.admin)
    with pytest.raises(Forbidden, match=r"^Device d9 is blocked$"):
        await messages.insert_notification(admin, "d9", "x", None, None)
    with pytest.raises(Forbidden, match=r"^Device d9 is blocked$"):
        messages.insert_notification_now(admin, "d9", "x", None, None)
    bob = wiring.auth.authenticate(world.bob)  # a member of n2 only
    with pytest.raises(Forbidden, match=r"^Device d1 is outside the token's scope$"):
        await messages.insert_notification(bob, "d1", "x", None, None)
    with pytest.raises(Forbidden, match=r"^Device d1 is outside the token's scope$"):
        messages.insert_notification_now(bob, "d1", "x", None, None)
    assert messages.messages.pending("notification") == []
