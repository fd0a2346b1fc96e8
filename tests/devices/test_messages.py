"""The history a replay reads: stored items in chunks bounded in count and in bytes."""

from __future__ import annotations

from typing import Any

import asyncpg

from gateway.app import WIRING_KEY
from gateway.devices.messages import REPLAY_CHUNK_BYTES, Item
from gateway.store.stored import Selection
from tests.conftest import AppFactory
from tests.realtime.helpers import build_world


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
