"""The user repository: users and their network memberships, on a real PostgreSQL."""

from __future__ import annotations

import pytest

from gateway.errors import Conflict, Unprocessable
from gateway.store.db import Pool
from gateway.store.devices import DeviceStore
from gateway.store.users import UserStore


async def _networks(pool: Pool, *names: str) -> list[int]:
    devices = DeviceStore(pool)
    return [(await devices.create_network(name, None)).id for name in names]


async def test_a_created_user_comes_back_with_its_networks_sorted(pool: Pool) -> None:
    n1, n2 = await _networks(pool, "n1", "n2")
    users = UserStore(pool)
    user = await users.create(
        name="Alice",
        email="Alice@Example.com",
        password_hash="h",
        role="client",
        network_ids=[n2, n1, n2],
    )
    assert (user.name, user.email, user.role, user.status) == (
        "Alice",
        "Alice@Example.com",
        "client",
        "active",
    )
    assert user.network_ids == (n1, n2)
    assert user.active
    assert await users.get(user.id) == user
    assert await users.by_email("alice@example.COM") == user


async def test_an_email_is_unique_whatever_its_case(pool: Pool) -> None:
    users = UserStore(pool)
    await users.create(name="a", email="a@example.com", password_hash="h", role="client")
    with pytest.raises(Conflict) as caught:
        await users.create(name="b", email="A@EXAMPLE.com", password_hash="h", role="client")
    assert caught.value.message == "a user with email 'A@EXAMPLE.com' already exists"


async def test_a_user_with_an_unknown_network_is_not_created_at_all(pool: Pool) -> None:
    users = UserStore(pool)
    with pytest.raises(Unprocessable) as caught:
        await users.create(
            name="a",
            email="a@example.com",
            password_hash="h",
            role="client",
            network_ids=[424242],
        )
    assert caught.value.message == "networkIds: no such network: 424242"
    assert await users.by_email("a@example.com") is None


async def test_ensure_creates_only_when_the_email_is_free(pool: Pool) -> None:
    users = UserStore(pool)
    assert await users.ensure(name="a", email="a@example.com", password_hash="h", role="admin")
    assert not await users.ensure(
        name="b", email="A@example.com", password_hash="other", role="client"
    )
    user = await users.by_email("a@example.com")
    assert user is not None and (user.name, user.role, user.password_hash) == ("a", "admin", "h")


async def test_update_changes_fields_and_replaces_memberships(pool: Pool) -> None:
    n1, n2 = await _networks(pool, "n1", "n2")
    users = UserStore(pool)
    user = await users.create(
        name="a", email="a@example.com", password_hash="h", role="client", network_ids=[n1]
    )
    updated = await users.update(user.id, {"name": "b", "status": "disabled"}, [n2])
    assert updated is not None
    assert (updated.name, updated.status, updated.network_ids) == ("b", "disabled", (n2,))
    assert not updated.active
    assert updated.updated_at > user.updated_at
    unchanged = await users.update(user.id, {})
    assert unchanged is not None and unchanged.network_ids == (n2,)
    assert await users.update(999_999, {"name": "x"}) is None


async def test_delete_says_whether_there_was_a_user(pool: Pool) -> None:
    users = UserStore(pool)
    user = await users.create(name="a", email="a@example.com", password_hash="h", role="client")
    assert await users.delete(user.id)
    assert not await users.delete(user.id)
    assert await users.get(user.id) is None


async def test_pages_are_ordered_by_id_after_a_cursor(pool: Pool) -> None:
    users = UserStore(pool)
    created = [
        await users.create(
            name=f"u{i}", email=f"u{i}@example.com", password_hash="h", role="client"
        )
        for i in range(5)
    ]
    ids = [user.id for user in created]
    assert [user.id for user in await users.page(2, 0)] == ids[:2]
    assert [user.id for user in await users.page(10, ids[1])] == ids[2:]
    assert await users.page(10, ids[-1]) == []


async def test_memberships_are_added_once_and_removed_once(pool: Pool) -> None:
    n1, n2 = await _networks(pool, "n1", "n2")
    users = UserStore(pool)
    alice = await users.create(name="a", email="a@example.com", password_hash="h", role="client")
    bob = await users.create(name="b", email="b@example.com", password_hash="h", role="client")
    await users.add_network(alice.id, n1)
    await users.add_network(alice.id, n1)
    await users.add_network(alice.id, n2)
    assert await users.network_ids(alice.id) == frozenset({n1, n2})
    assert await users.memberships_of([alice.id, bob.id]) == {
        alice.id: frozenset({n1, n2}),
        bob.id: frozenset(),
    }
    assert await users.remove_network(alice.id, n1)
    assert not await users.remove_network(alice.id, n1)
    assert await users.network_ids(alice.id) == frozenset({n2})
    with pytest.raises(Unprocessable) as caught:
        await users.add_network(alice.id, 424242)
    assert caught.value.message == "no such user or network"
