"""The caches the per-message check reads are reconciled with PostgreSQL periodically, so a
change whose control message was lost is wrong on a live session for at most the interval."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.conftest import AppFactory
from tests.realtime.helpers import WAIT, build_world, connect

# Changes made straight in PostgreSQL: no instance hears of them but through reconciliation.
LOST_CHANGES = {
    "membership ended": "DELETE FROM user_networks WHERE user_id = $1",
    "device moved": "UPDATE devices SET network_id = $1 WHERE id = 'd1'",
}


@pytest.mark.parametrize("change", sorted(LOST_CHANGES))
async def test_a_change_without_a_control_message_applies_within_the_interval(
    make_client: AppFactory, clean_db: str, change: str
) -> None:
    client = await make_client(reconcile_interval=0.2)
    world = await build_world(client)
    alice = await connect(client, world.alice)
    await alice.ok("device/get", deviceId="d1")
    argument = world.alice_id if change == "membership ended" else world.n2
    conn = await asyncpg.connect(clean_db)
    try:
        await conn.execute(LOST_CHANGES[change], argument)
    finally:
        await conn.close()

    deadline = asyncio.get_running_loop().time() + WAIT
    while True:
        reply = await alice.request("device/get", deviceId="d1")
        if reply["status"] == "error" and reply["code"] == 403:
            break
        assert asyncio.get_running_loop().time() < deadline, "not reconciled in time"
        await asyncio.sleep(0.05)
