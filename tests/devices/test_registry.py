"""The registry's caches: filled from PostgreSQL on first use, kept current by control events,
and reconciled with PostgreSQL (telling listeners only when something changed)."""

from __future__ import annotations

from gateway.bus.control import (
    DEVICE_DELETED,
    DEVICE_SAVED,
    MEMBERSHIP,
    NETWORK_CREATED,
    NETWORK_DELETED,
    Control,
)
from gateway.bus.memory import MemoryBus
from gateway.devices.registry import RESYNCED, Registry
from gateway.store.db import Pool
from gateway.store.devices import DeviceStore
from gateway.store.users import UserStore
from gateway.types import Device


class Heard:
    def __init__(self, registry: Registry) -> None:
        self.events: list[str] = []
        registry.listen(lambda kind, event: self.events.append(kind))


def _setup(pool: Pool) -> tuple[Registry, Control, DeviceStore, UserStore]:
    control = Control(MemoryBus("registry-test"))
    devices, users = DeviceStore(pool), UserStore(pool)
    return Registry(devices, users, control), control, devices, users


def _device(device_id: str, network_id: int) -> Device:
    return Device(
        id=device_id,
        name=device_id,
        data=None,
        network_id=network_id,
        device_type_id=None,
        is_blocked=False,
    )


async def test_load_reads_every_network(pool: Pool) -> None:
    registry, _, devices, _ = _setup(pool)
    first = await devices.create_network("a", None)
    second = await devices.create_network("b", None)
    await registry.load()
    assert registry.network_ids == {first.id, second.id}


async def test_a_device_is_fetched_once_then_served_from_the_cache(pool: Pool) -> None:
    registry, _, devices, _ = _setup(pool)
    network = await devices.create_network("n", None)
    await devices.save_device(_device("d1", network.id))
    assert registry.device("d1") is None
    fetched = await registry.fetch_device("d1")
    assert fetched == _device("d1", network.id)
    await devices.delete_device("d1")
    assert registry.device("d1") == fetched
    assert await registry.fetch_device("nope") is None


async def test_memberships_are_unknown_until_loaded_and_empty_is_an_answer(pool: Pool) -> None:
    registry, _, devices, users = _setup(pool)
    network = await devices.create_network("n", None)
    member = await users.create(
        name="m", email="m@example.com", password_hash="h", role="client", network_ids=[network.id]
    )
    loner = await users.create(name="l", email="l@example.com", password_hash="h", role="client")
    assert registry.known_memberships(member.id) is None
    assert registry.memberships(member.id) == frozenset()
    assert await registry.load_memberships(member.id) == frozenset({network.id})
    assert registry.memberships(member.id) == frozenset({network.id})
    assert await registry.load_memberships(loner.id) == frozenset()
    assert registry.known_memberships(loner.id) == frozenset()


async def test_control_events_keep_the_caches_current_and_are_told_on(pool: Pool) -> None:
    registry, control, _, _ = _setup(pool)
    heard = Heard(registry)
    control.publish(NETWORK_CREATED, id=3)
    control.publish(DEVICE_SAVED, device=_device("d1", 3).to_json())
    control.publish(MEMBERSHIP, user_id=5, network_ids=[3, 4])
    assert 3 in registry.network_ids
    assert registry.device("d1") == _device("d1", 3)
    assert registry.memberships(5) == frozenset({3, 4})
    control.publish(DEVICE_DELETED, id="d1")
    assert registry.device("d1") is None
    control.publish(DEVICE_SAVED, device=_device("d2", 3).to_json())
    control.publish(NETWORK_DELETED, id=3, device_ids=["d2"])
    assert 3 not in registry.network_ids
    assert registry.device("d2") is None
    assert registry.memberships(5) == frozenset({4})
    assert heard.events == [
        NETWORK_CREATED,
        DEVICE_SAVED,
        MEMBERSHIP,
        DEVICE_DELETED,
        DEVICE_SAVED,
        NETWORK_DELETED,
    ]


async def test_a_membership_change_without_networks_only_clears_a_known_user(pool: Pool) -> None:
    registry, control, _, _ = _setup(pool)
    control.publish(MEMBERSHIP, user_id=6, network_ids=None)
    assert registry.known_memberships(6) is None
    control.publish(MEMBERSHIP, user_id=6, network_ids=[1])
    control.publish(MEMBERSHIP, user_id=6, network_ids=None)
    assert registry.known_memberships(6) == frozenset()


async def test_a_resync_catches_up_with_what_no_event_announced(pool: Pool) -> None:
    registry, _, devices, users = _setup(pool)
    heard = Heard(registry)
    network = await devices.create_network("n", None)
    moved_to = await devices.create_network("m", None)
    user = await users.create(
        name="u", email="u@example.com", password_hash="h", role="client", network_ids=[network.id]
    )
    await devices.save_device(_device("d1", network.id))
    await registry.load()
    await registry.load_memberships(user.id)
    await registry.fetch_device("d1")

    await registry.resync()
    assert heard.events == []  # nothing changed: nobody is told

    await users.remove_network(user.id, network.id)
    await devices.save_device(_device("d1", moved_to.id))
    await registry.resync()
    assert heard.events == [RESYNCED]
    assert registry.memberships(user.id) == frozenset()
    assert registry.device("d1") == _device("d1", moved_to.id)
