"""Plugins: a name, an owner, a topic and the login session their tokens belong to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from gateway.errors import Conflict
from gateway.store.db import Pool


@dataclass(frozen=True, slots=True)
class Plugin:
    id: int
    name: str
    description: str | None
    user_id: int
    topic: dict[str, Any]
    sid: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "userId": self.user_id,
            "topic": self.topic,
            "createdAt": self.created_at.isoformat(),
        }


def _plugin(row: asyncpg.Record) -> Plugin:
    return Plugin(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        user_id=row["user_id"],
        topic=row["topic"],
        sid=str(row["sid"]),
        created_at=row["created_at"],
    )


class PluginStore:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def next_id(self) -> int:
        """The id is in the plugin's tokens, which are minted before the row is written."""
        value: int = await self.pool.fetchval("SELECT nextval('plugins_id_seq')")
        return value

    async def create(
        self,
        plugin_id: int,
        name: str,
        description: str | None,
        user_id: int,
        topic: dict[str, Any],
        sid: str,
    ) -> Plugin:
        try:
            row = await self.pool.fetchrow(
                """INSERT INTO plugins (id, name, description, user_id, topic, sid)
                   VALUES ($1, $2, $3, $4, $5, $6) RETURNING *""",
                plugin_id,
                name,
                description,
                user_id,
                topic,
                sid,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(f"a plugin named {name!r} already exists") from None
        assert row is not None
        return _plugin(row)

    async def get(self, plugin_id: int) -> Plugin | None:
        row = await self.pool.fetchrow("SELECT * FROM plugins WHERE id = $1", plugin_id)
        return None if row is None else _plugin(row)

    async def page(self, user_id: int | None, limit: int, offset: int) -> list[Plugin]:
        rows = await self.pool.fetch(
            """SELECT * FROM plugins WHERE ($1::bigint IS NULL OR user_id = $1)
               ORDER BY id LIMIT $2 OFFSET $3""",
            user_id,
            limit,
            offset,
        )
        return [_plugin(row) for row in rows]

    async def delete(self, plugin_id: int) -> Plugin | None:
        row = await self.pool.fetchrow("DELETE FROM plugins WHERE id = $1 RETURNING *", plugin_id)
        return None if row is None else _plugin(row)
