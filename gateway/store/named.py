"""One page of a table of named things (networks, device types): DeviceHive's list filters."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from gateway.store.db import Pool

NAMED_SORTS = {"id": "id", "name": "lower(name)"}
"""What a listing may be sorted by (a fixed map: the column never comes from the client)."""


async def named_page(
    pool: Pool,
    table: str,
    *,
    only: Iterable[int] | None,
    name: str | None,
    name_pattern: str | None,
    sort: str,
    descending: bool,
    limit: int,
    offset: int,
) -> list[asyncpg.Record]:
    """``table`` is the caller's literal; ``name_pattern`` is SQL LIKE, case-insensitive."""
    order = f"{NAMED_SORTS[sort]} {'DESC' if descending else 'ASC'}, id"
    return await pool.fetch(
        f"""SELECT id, name, description FROM {table}
            WHERE ($1::bigint[] IS NULL OR id = any($1::bigint[]))
              AND ($2::text IS NULL OR lower(name) = lower($2))
              AND ($3::text IS NULL OR name ILIKE $3)
            ORDER BY {order} LIMIT $4 OFFSET $5""",  # noqa: S608 - fixed identifiers
        None if only is None else list(only),
        name,
        name_pattern,
        limit,
        offset,
    )
