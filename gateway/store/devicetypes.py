"""Device types, and which of them each user may reach."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg

from gateway.errors import Conflict, NotFound, Unprocessable
from gateway.store.db import Pool
from gateway.store.named import named_page


@dataclass(frozen=True, slots=True)
class DeviceType:
    id: int
    name: str
    description: str | None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "description": self.description}


@dataclass(frozen=True, slots=True)
class TypeAccess:
    """A user's reach over device types: all of them, or ``ids``."""

    all: bool
    ids: frozenset[int]

    def allows(self, device_type_id: int | None) -> bool:
        return self.all or device_type_id is None or device_type_id in self.ids


def _device_type(row: asyncpg.Record) -> DeviceType:
    return DeviceType(id=row["id"], name=row["name"], description=row["description"])


def _duplicate(name: object) -> Conflict:
    return Conflict(f"a device type named {name!r} already exists")


class DeviceTypeStore:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def create(self, name: str, description: str | None) -> DeviceType:
        try:
            row = await self.pool.fetchrow(
                "INSERT INTO device_types (name, description) VALUES ($1, $2) RETURNING *",
                name,
                description,
            )
        except asyncpg.UniqueViolationError:
            raise _duplicate(name) from None
        assert row is not None
        return _device_type(row)

    async def get(self, device_type_id: int) -> DeviceType | None:
        row = await self.pool.fetchrow("SELECT * FROM device_types WHERE id = $1", device_type_id)
        return None if row is None else _device_type(row)

    async def update(self, device_type_id: int, changes: dict[str, Any]) -> DeviceType | None:
        if not changes:
            return await self.get(device_type_id)
        columns = [column for column in ("name", "description") if column in changes]
        assignments = ", ".join(f"{col} = ${i + 2}" for i, col in enumerate(columns))
        try:
            row = await self.pool.fetchrow(
                f"UPDATE device_types SET {assignments} WHERE id = $1 RETURNING *",  # noqa: S608
                device_type_id,
                *(changes[column] for column in columns),
            )
        except asyncpg.UniqueViolationError:
            raise _duplicate(changes.get("name")) from None
        return None if row is None else _device_type(row)

    async def delete(self, device_type_id: int) -> None:
        try:
            result = await self.pool.execute(
                "DELETE FROM device_types WHERE id = $1", device_type_id
            )
        except asyncpg.ForeignKeyViolationError:
            raise Conflict(
                f"Device type {device_type_id} is still used by devices; move or delete them first"
            ) from None
        if result == "DELETE 0":
            raise NotFound("Device type not found")

    async def page(
        self,
        *,
        only: Iterable[int] | None = None,
        name: str | None = None,
        name_pattern: str | None = None,
        sort: str = "id",
        descending: bool = False,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[DeviceType]:
        """``name_pattern`` is SQL LIKE (DeviceHive's ``namePattern``), case-insensitive."""
        rows = await named_page(
            self.pool,
            "device_types",
            only=only,
            name=name,
            name_pattern=name_pattern,
            sort=sort,
            descending=descending,
            limit=limit,
            offset=offset,
        )
        return [_device_type(row) for row in rows]

    # -- user access -----------------------------------------------------------------------

    async def access(self, user_id: int) -> TypeAccess | None:
        """None when there is no such user."""
        row = await self.pool.fetchrow(
            """SELECT all_device_types_available AS all_types,
                      array(SELECT device_type_id FROM user_device_types t
                            WHERE t.user_id = u.id) AS ids
               FROM users u WHERE id = $1""",
            user_id,
        )
        if row is None:
            return None
        return TypeAccess(all=row["all_types"], ids=frozenset(row["ids"]))

    async def limits_of(self, user_ids: Iterable[int]) -> dict[int, frozenset[int] | None]:
        """Per user: None when every device type is open to them, else the ones that are."""
        rows = await self.pool.fetch(
            """SELECT u.id, u.all_device_types_available AS all_types,
                      array(SELECT device_type_id FROM user_device_types t
                            WHERE t.user_id = u.id) AS ids
               FROM users u WHERE u.id = any($1::bigint[])""",
            list(user_ids),
        )
        return {row["id"]: None if row["all_types"] else frozenset(row["ids"]) for row in rows}

    async def set_access(
        self, user_id: int, all_types: bool, device_type_ids: Iterable[int]
    ) -> TypeAccess | None:
        """Replace a user's device type access; None when there is no such user."""
        wanted = sorted(set(device_type_ids))
        async with self.pool.acquire() as conn, conn.transaction():
            updated = await conn.execute(
                "UPDATE users SET all_device_types_available = $2 WHERE id = $1",
                user_id,
                all_types,
            )
            if updated == "UPDATE 0":
                return None
            await conn.execute("DELETE FROM user_device_types WHERE user_id = $1", user_id)
            if wanted:
                known = await conn.fetch(
                    "SELECT id FROM device_types WHERE id = any($1::bigint[])", wanted
                )
                if missing := sorted(set(wanted) - {row["id"] for row in known}):
                    raise Unprocessable(
                        "deviceTypeIds: no such device type: " + ", ".join(map(str, missing))
                    )
                await conn.executemany(
                    "INSERT INTO user_device_types (user_id, device_type_id) VALUES ($1, $2)",
                    [(user_id, device_type_id) for device_type_id in wanted],
                )
        return TypeAccess(all=all_types, ids=frozenset(wanted))
