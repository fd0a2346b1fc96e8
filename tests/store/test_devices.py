"""The device repository: networks and devices, on a real PostgreSQL."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from gateway.errors import Conflict, Forbidden, Unprocessable
from gateway.store.db import Pool
from gateway.store.devices import DeviceStore
from gateway.store.devicetypes import DeviceTypeStore
from gateway.types import Device, Network


def _device(device_id: str, network_id: int, **fields: object) -> Device:
    values: dict[str, object] = {
        "name": device_id,
        "data": None,
        "device_type_id": None,
        "is_blocked": False,
    }
    values.update(fields)
    return Device(id=device_id, network_id=network_id, **values)  # type: ignore[arg-type]


async def test_network_names_are_unique_whatever_their_case(pool: Pool) -> None:
    store = DeviceStore(pool)
    network = await store.create_network("Home", "the house")
    assert network == Network(id=network.id, name="Home", description="the house")
    with pytest.raises(Conflict) as caught:
        await store.create_network("HOME", None)
    assert caught.value.message == "a network named 'HOME' already exists"
    other = await store.create_network("Office", None)
    with pytest.raises(Conflict) as renamed:
        await store.update_network(other.id, {"name": "home"})
    assert renamed.value.message == "a network named 'home' already exists"


async def test_a_network_is_read_changed_and_listed(pool: Pool) -> None:
    store = DeviceStore(pool)
    first = await store.create_network("a", None)
    second = await store.create_network("b", None)
    changed = await store.update_network(first.id, {"description": "now described"})
    assert changed == Network(id=first.id, name="a", description="now described")
    assert await store.update_network(first.id, {}) == changed
    assert await store.update_network(999_999, {"name": "x"}) is None
    assert await store.get_network(999_999) is None
    assert await store.networks() == [changed, second]
    assert await store.networks([second.id]) == [second]
    assert await store.networks([]) == []


async def test_deleting_a_network_deletes_its_devices_and_names_them(pool: Pool) -> None:
    store = DeviceStore(pool)
    network = await store.create_network("n", None)
    kept = await store.create_network("kept", None)
    for device_id in ("d2", "d1"):
        await store.save_device(_device(device_id, network.id))
    await store.save_device(_device("d3", kept.id))
    assert sorted(await store.delete_network(network.id) or []) == ["d1", "d2"]
    assert await store.get_device("d1") is None
    assert await store.get_device("d3") is not None
    assert await store.delete_network(network.id) is None


async def test_saving_a_device_creates_then_replaces_it(pool: Pool) -> None:
    store = DeviceStore(pool)
    network = await store.create_network("n", None)
    first = _device("d1", network.id, data={"floor": 1})
    saved, replaced = await store.save_device(first)
    assert (saved, replaced) == (first, None)
    pump = await DeviceTypeStore(pool).create("pump", None)
    second = _device("d1", network.id, name="renamed", device_type_id=pump.id, is_blocked=True)
    saved, replaced = await store.save_device(second)
    assert (saved, replaced) == (second, first)
    assert await store.get_device("d1") == second


async def test_a_device_in_an_unknown_network_is_refused(pool: Pool) -> None:
    store = DeviceStore(pool)
    with pytest.raises(Unprocessable) as caught:
        await store.save_device(_device("d1", 424242))
    assert caught.value.message == "networkId: no such network: 424242"


async def test_a_device_of_an_unknown_device_type_is_refused(pool: Pool) -> None:
    store = DeviceStore(pool)
    network = await store.create_network("n", None)
    with pytest.raises(Unprocessable) as caught:
        await store.save_device(_device("d1", network.id, device_type_id=7))
    assert caught.value.message == "deviceTypeId: no such device type: 7"


async def test_devices_are_listed_by_id_within_networks_after_a_cursor(pool: Pool) -> None:
    store = DeviceStore(pool)
    n1 = await store.create_network("n1", None)
    n2 = await store.create_network("n2", None)
    for device_id, network in (("c", n1), ("a", n1), ("b", n2)):
        await store.save_device(_device(device_id, network.id))
    assert [d.id for d in await store.devices()] == ["a", "b", "c"]
    assert [d.id for d in await store.devices([n1.id])] == ["a", "c"]
    assert [d.id for d in await store.devices(None, limit=2)] == ["a", "b"]
    assert [d.id for d in await store.devices(None, after="a")] == ["b", "c"]
    assert await store.devices([]) == []
    assert set(await store.devices_by_id(["a", "b", "zz"])) == {"a", "b"}
    assert await store.networks_of(["a", "b", "zz"]) == {"a": n1.id, "b": n2.id}


async def test_delete_device_says_whether_there_was_one(pool: Pool) -> None:
    store = DeviceStore(pool)
    network = await store.create_network("n", None)
    await store.save_device(_device("d1", network.id))
    assert await store.delete_device("d1")
    assert not await store.delete_device("d1")


async def test_a_device_created_during_a_save_is_decided_on_again(
    pool: Pool, clean_db: str
) -> None:
    """A save that found no device must not overwrite one created meanwhile: it decides again
    on that device (here: refuses to take it), as it would have had it come first."""
    store = DeviceStore(pool)
    mine = await store.create_network("mine", None)
    theirs = await store.create_network("theirs", None)
    rival = await asyncpg.connect(clean_db)
    try:
        created = rival.transaction()
        await created.start()
        await rival.execute(
            "INSERT INTO devices (id, name, network_id) VALUES ('d1', 'theirs', $1)", theirs.id
        )
        seen: list[Device | None] = []

        def decide(existing: Device | None) -> Device:
            seen.append(existing)
            if existing is not None and existing.network_id != mine.id:
                raise Forbidden("taken")
            return _device("d1", mine.id)

        saving = asyncio.create_task(store.save_device_as("d1", decide))
        # The save read no device and now waits, in its insert, on the rival's.
        deadline = asyncio.get_running_loop().time() + 5
        while not await pool.fetchval(
            """SELECT count(*) FROM pg_stat_activity
               WHERE datname = current_database() AND wait_event_type = 'Lock'
                 AND query LIKE 'INSERT INTO devices%'"""
        ):
            assert asyncio.get_running_loop().time() < deadline, "the save never waited"
            await asyncio.sleep(0.01)
        await created.commit()
        with pytest.raises(Forbidden):
            await saving
    finally:
        await rival.close()
    theirs_d1 = _device("d1", theirs.id, name="theirs")
    assert seen == [None, theirs_d1]
    assert await store.get_device("d1") == theirs_d1


async def test_a_delete_checks_the_device_as_it_stands(pool: Pool) -> None:
    store = DeviceStore(pool)
    network = await store.create_network("n", None)
    await store.save_device(_device("d1", network.id))

    def refuse(device: Device) -> None:
        raise Forbidden(f"not {device.id}")

    with pytest.raises(Forbidden):
        await store.delete_device("d1", refuse)
    assert await store.get_device("d1") is not None
    assert await store.delete_device("d1", lambda device: None)
