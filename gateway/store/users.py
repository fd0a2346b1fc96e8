"""The repository of users and their network memberships."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import Any

import asyncpg

from gateway.errors import Conflict, Unprocessable
from gateway.store.db import Connection, Pool
from gateway.types import User

_SELECT = """
    SELECT u.*, coalesce(array(SELECT network_id FROM user_networks m
                               WHERE m.user_id = u.id ORDER BY network_id), '{}') AS network_ids
    FROM users u
"""


def composed(email: str) -> str:
    """An address in Unicode NFC: "é" typed as "e" and a combining accent is the same text,
    and must be the same account."""
    return unicodedata.normalize("NFC", email)


def _user(row: asyncpg.Record | None) -> User | None:
    if row is None:
        return None
    return User(
        id=row["id"],
        name=row["name"],
        email=row["email"],
        role=row["role"],
        status=row["status"],
        password_hash=row["password_hash"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        network_ids=tuple(row["network_ids"]),
    )


class UserStore:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def get(self, user_id: int) -> User | None:
        return _user(await self.pool.fetchrow(_SELECT + " WHERE u.id = $1", user_id))

    async def by_email(self, email: str) -> User | None:
        """Case-insensitively (PostgreSQL's lower(), as the unique index) and whatever the
        Unicode form it is written in: addresses are stored composed (NFC), and a row stored
        before that in another form still answers to that form, first."""
        return _user(
            await self.pool.fetchrow(
                _SELECT
                + """ WHERE lower(u.email) = any(ARRAY[lower($1), lower($2)])
                              ORDER BY lower(u.email) = lower($1) DESC LIMIT 1""",
                email,
                composed(email),
            )
        )

    async def page(self, limit: int, after_id: int) -> list[User]:
        rows = await self.pool.fetch(
            _SELECT + " WHERE u.id > $1 ORDER BY u.id LIMIT $2", after_id, limit
        )
        return [user for user in map(_user, rows) if user is not None]

    async def create(
        self,
        *,
        name: str,
        email: str,
        password_hash: str,
        role: str,
        network_ids: Iterable[int] = (),
    ) -> User:
        email = composed(email)
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                user_id = await conn.fetchval(
                    """INSERT INTO users (name, email, password_hash, role)
                       VALUES ($1, $2, $3, $4) RETURNING id""",
                    name,
                    email,
                    password_hash,
                    role,
                )
                await _set_networks(conn, user_id, network_ids)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"a user with email {email!r} already exists") from None
        user = await self.get(user_id)
        assert user is not None
        return user

    async def ensure(self, *, name: str, email: str, password_hash: str, role: str) -> bool:
        """Create the user unless one with that email exists; True when created."""
        email = composed(email)
        created = await self.pool.fetchval(
            """INSERT INTO users (name, email, password_hash, role) VALUES ($1, $2, $3, $4)
               ON CONFLICT (lower(email)) DO NOTHING RETURNING id""",
            name,
            email,
            password_hash,
            role,
        )
        return created is not None

    async def update(
        self, user_id: int, changes: dict[str, Any], network_ids: Iterable[int] | None = None
    ) -> User | None:
        async with self.pool.acquire() as conn, conn.transaction():
            demoted = changes.get("role", "admin") != "admin"
            if demoted or changes.get("status", "active") != "active":
                await _keep_an_admin(conn, user_id)
            exists = await conn.fetchval("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id)
            if not exists:
                return None
            if changes:
                columns = list(changes)
                assignments = ", ".join(f"{col} = ${i + 2}" for i, col in enumerate(columns))
                await conn.execute(
                    f"UPDATE users SET {assignments}, updated_at = now() WHERE id = $1",  # noqa: S608
                    user_id,
                    *changes.values(),
                )
            if network_ids is not None:
                await conn.execute("DELETE FROM user_networks WHERE user_id = $1", user_id)
                await _set_networks(conn, user_id, network_ids)
        return await self.get(user_id)

    async def delete(self, user_id: int) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            await _keep_an_admin(conn, user_id)
            result = await conn.execute("DELETE FROM users WHERE id = $1", user_id)
        return bool(result != "DELETE 0")

    async def network_ids(self, user_id: int) -> frozenset[int]:
        rows = await self.pool.fetch(
            "SELECT network_id FROM user_networks WHERE user_id = $1", user_id
        )
        return frozenset(row["network_id"] for row in rows)

    async def memberships_of(self, user_ids: Iterable[int]) -> dict[int, frozenset[int]]:
        """The networks of each of ``user_ids`` (an empty set for those in none)."""
        wanted = list(user_ids)
        rows = await self.pool.fetch(
            "SELECT user_id, network_id FROM user_networks WHERE user_id = any($1::bigint[])",
            wanted,
        )
        found: dict[int, set[int]] = {user_id: set() for user_id in wanted}
        for row in rows:
            found[row["user_id"]].add(row["network_id"])
        return {user_id: frozenset(networks) for user_id, networks in found.items()}

    async def add_network(self, user_id: int, network_id: int) -> None:
        try:
            await self.pool.execute(
                "INSERT INTO user_networks VALUES ($1, $2) ON CONFLICT DO NOTHING",
                user_id,
                network_id,
            )
        except asyncpg.ForeignKeyViolationError:
            raise Unprocessable("no such user or network") from None

    async def remove_network(self, user_id: int, network_id: int) -> bool:
        result = await self.pool.execute(
            "DELETE FROM user_networks WHERE user_id = $1 AND network_id = $2",
            user_id,
            network_id,
        )
        return bool(result != "DELETE 0")


async def _set_networks(conn: Connection, user_id: int, network_ids: Iterable[int]) -> None:
    wanted = sorted(set(network_ids))
    if not wanted:
        return
    known = await conn.fetch("SELECT id FROM networks WHERE id = any($1::bigint[])", wanted)
    missing = sorted(set(wanted) - {row["id"] for row in known})
    if missing:
        raise Unprocessable(f"networkIds: no such network: {', '.join(map(str, missing))}")
    await conn.executemany(
        "INSERT INTO user_networks (user_id, network_id) VALUES ($1, $2)",
        [(user_id, network_id) for network_id in wanted],
    )


async def _keep_an_admin(conn: Connection, user_id: int) -> None:
    """Refuse to demote, disable or delete the last active administrator: nobody could then
    manage users over the API. Every active administrator is locked, in id order, so two
    administrators demoting each other at once are serialized (and the second refused); NO KEY
    UPDATE, which logins (a foreign key's KEY SHARE on their user) do not wait for."""
    admins = await conn.fetch(
        """SELECT id FROM users WHERE role = 'admin' AND status = 'active'
           ORDER BY id FOR NO KEY UPDATE"""
    )
    if [row["id"] for row in admins] == [user_id]:
        raise Conflict(f"User {user_id} is the last active administrator; make another one first")
