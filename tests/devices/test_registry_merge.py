"""The registry's reload from PostgreSQL merges: a change announced while the reload waits on
the database is not overwritten by the older state the reload read."""

from __future__ import annotations

import asyncio

import asyncpg

from gateway.bus.control import DEVICE_SAVED, MEMBERSHIP, Control
from gateway.bus.memory import MemoryBus
from gateway.devices.registry import Registry
from gateway.store.db import Pool
from gateway.store.devices import DeviceStore
from gateway.store.users import UserStore
from gateway.types import Device
from tests.realtime.helpers import WAIT


async def until_blocked_on_a_lock(pool: Pool) -> None:
    """Until some backend waits on a lock: the reload is parked inside its devices query."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while not await pool.fetchval(
        "SELECT count(*) > 0 FROM pg_stat_activity "
        "WHERE wait_event_type = 'Lock' AND datname = current_database()"
    ):
        assert asyncio.get_running_loop().time() < deadline, "the reload never blocked"
        await asyncio.sleep(0.01)


async def test_changes_announced_during_a_reload_survive_it(pool: Pool, clean_db: str) -> None:
    devices, users = DeviceStore(pool), UserStore(pool)
    control = Control(MemoryBus("test"))
    registry = Registry(devices, users, control)
    n1 = await devices.create_network("n1", None)
    n2 = await devices.create_network("n2", None)
    user = await users.create(
        name="u", email="u@example.com", password_hash="x", role="client", network_ids=[n1.id]
    )
    device = Device("d1", "d1", None, n1.id, None, False)
    await devices.save_device(device)
    await registry.load()
    assert await registry.load_memberships(user.id) == frozenset({n1.id})
    assert await registry.fetch_device("d1") == device

    blocker = await asyncpg.connect(clean_db)
    try:
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute("LOCK TABLE devices IN ACCESS EXCLUSIVE MODE")
        reload = asyncio.create_task(registry.resync())
        await until_blocked_on_a_lock(pool)
        # Meanwhile (after the reload read the memberships): the user joins n2, the device
        # is renamed; both are written, then announced.
        await users.add_network(user.id, n2.id)
        control.publish(MEMBERSHIP, user_id=user.id, network_ids=[n1.id, n2.id])
        renamed = Device("d1", "renamed", None, n1.id, None, False)
        control.publish(DEVICE_SAVED, device=renamed.to_json())
        await transaction.rollback()
    finally:
        await blocker.close()
    await asyncio.wait_for(reload, WAIT)

    assert registry.memberships(user.id) == frozenset({n1.id, n2.id})
    assert registry.device("d1") == renamed
