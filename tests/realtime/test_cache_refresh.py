"""The caches the per-message check reads are reconciled with PostgreSQL periodically, so a
change whose control message was lost is wrong on a live session for at most the interval."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from tests.conftest import AppFactory
from tests.realtime.helpers import WAIT, build_world, connect


async def _until(check: Any, timeout: float = WAIT) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "not reconciled in time"
        await asyncio.sleep(0.05)


async def test_a_membership_ended_without_a_control_message_applies_within_the_interval(
    make_client: AppFactory, clean_db: str
) -> None:
    client = await make_client(reconcile_interval=0.2)
    world = await build_world(client)
    alice = await connect(client, world.alice)
    await alice.ok("device/get", deviceId="d1")

    # Straight in PostgreSQL: no instance hears of it but through reconciliation.
    conn = await asyncpg.connect(clean_db)
    try:
        await conn.execute("DELETE FROM user_networks WHERE user_id = $1", world.alice_id)
    finally:
        await conn.close()

    async def refused() -> bool:
        reply = await alice.request("device/get", deviceId="d1")
        return reply["status"] == "error" and reply["code"] == 403

    await _until(refused)


async def test_a_device_moved_without_a_control_message_applies_within_the_interval(
    make_client: AppFactory, clean_db: str
) -> None:
    client = await make_client(reconcile_interval=0.2)
    world = await build_world(client)
    alice = await connect(client, world.alice)
    await alice.ok("device/get", deviceId="d1")

    conn = await asyncpg.connect(clean_db)
    try:
        await conn.execute("UPDATE devices SET network_id = $1 WHERE id = 'd1'", world.n2)
    finally:
        await conn.close()

    async def refused() -> bool:
        reply = await alice.request("device/get", deviceId="d1")
        return reply["status"] == "error" and reply["code"] == 403

    await _until(refused)
