"""DeviceHive-style listings of users and networks (filters, sort, take/skip) and the
configuration properties."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gateway.store.db import Pool
from gateway.store.named import named_page
from gateway.store.users import _SELECT, _user
from gateway.types import Network, User

USER_SORTS = {"id": "u.id", "login": "lower(u.email)"}


@dataclass(frozen=True, slots=True)
class Property:
    name: str
    value: str
    entity_version: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "entityVersion": self.entity_version}


def _order(columns: dict[str, str], sort: str, descending: bool, tie: str) -> str:
    return f"{columns[sort]} {'DESC' if descending else 'ASC'}, {tie}"


class CatalogStore:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def users(
        self,
        *,
        name: str | None = None,
        name_pattern: str | None = None,
        role: str | None = None,
        status: str | None = None,
        sort: str = "id",
        descending: bool = False,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[User]:
        """``name`` and ``name_pattern`` (SQL LIKE) match the login, which is the email."""
        rows = await self.pool.fetch(
            _SELECT
            + f""" WHERE ($1::text IS NULL OR lower(u.email) = lower($1))
                     AND ($2::text IS NULL OR u.email ILIKE $2)
                     AND ($3::text IS NULL OR u.role = $3)
                     AND ($4::text IS NULL OR u.status = $4)
                   ORDER BY {_order(USER_SORTS, sort, descending, "u.id")}
                   LIMIT $5 OFFSET $6""",
            name,
            name_pattern,
            role,
            status,
            limit,
            offset,
        )
        return [user for user in map(_user, rows) if user is not None]

    async def networks(
        self,
        *,
        only: Iterable[int] | None = None,
        name: str | None = None,
        name_pattern: str | None = None,
        sort: str = "id",
        descending: bool = False,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[Network]:
        rows = await named_page(
            self.pool,
            "networks",
            only=only,
            name=name,
            name_pattern=name_pattern,
            sort=sort,
            descending=descending,
            limit=limit,
            offset=offset,
        )
        return [Network(id=r["id"], name=r["name"], description=r["description"]) for r in rows]

    # -- configuration ---------------------------------------------------------------------

    async def get_property(self, name: str) -> Property | None:
        row = await self.pool.fetchrow("SELECT * FROM configuration WHERE name = $1", name)
        return None if row is None else Property(row["name"], row["value"], row["entity_version"])

    async def put_property(self, name: str, value: str) -> Property:
        row = await self.pool.fetchrow(
            """INSERT INTO configuration (name, value) VALUES ($1, $2)
               ON CONFLICT (name) DO UPDATE SET value = excluded.value,
                   entity_version = configuration.entity_version + 1
               RETURNING *""",
            name,
            value,
        )
        assert row is not None
        return Property(row["name"], row["value"], row["entity_version"])

    async def delete_property(self, name: str) -> bool:
        result = await self.pool.execute("DELETE FROM configuration WHERE name = $1", name)
        return bool(result != "DELETE 0")
