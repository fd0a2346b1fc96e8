"""Stored notifications and commands, read from PostgreSQL: history pages, replays, sizes,
retention. What is acknowledged but not yet written is ``MessageStore``'s (its subclass)."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from gateway.clock import at
from gateway.store.db import Pool
from gateway.store.rows import KINDS, without_payloads
from gateway.types import COMMAND, Command, Notification


@dataclass(frozen=True, slots=True)
class Selection:
    """Which items a history read wants, by device, network and name (None: any): one type
    for the pending items (``matches``) and the stored ones (``since``, in SQL), so the two
    can never select differently."""

    device_ids: Collection[str] | None = None
    network_ids: Collection[int] | None = None
    names: Collection[str] | None = None

    def matches(self, item: Notification | Command) -> bool:
        return (
            (self.device_ids is None or item.device_id in self.device_ids)
            and (self.network_ids is None or item.network_id in self.network_ids)
            and (self.names is None or item.name in self.names)
        )


class StoredMessages:
    pool: Pool

    async def since(
        self,
        kind: str,
        since: float,
        selection: Selection,
        *,
        limit: int,
        after_id: int | None = None,
        updated: bool = False,
        light: bool = False,
    ) -> list[Notification | Command]:
        """Stored notifications or commands newer than ``since``, oldest first; with
        ``after_id``, those after (``since``, ``after_id``) in that order (the next page).
        With ``updated`` (commands): those whose state changed after ``since``, by
        ``last_updated``, the commands created since included. ``light``: without their
        payloads (``by_ids`` reads them whole)."""
        table, name_column, columns, make = KINDS[kind]
        if light:
            columns = without_payloads(columns)
        stamp = '"last_updated"' if updated and kind == COMMAND else '"timestamp"'
        rows = await self.pool.fetch(
            f"""SELECT {columns} FROM {table}
                WHERE {stamp} >= $1
                  AND ({stamp}, id) > ($1, coalesce($6, 9223372036854775807))
                  AND ($2::text[] IS NULL OR device_id = any($2::text[]))
                  AND ($3::bigint[] IS NULL OR network_id = any($3::bigint[]))
                  AND ($4::text[] IS NULL OR {name_column} = any($4::text[]))
                ORDER BY {stamp}, id LIMIT $5""",  # noqa: S608 - fixed identifiers
            at(since),
            _list(selection.device_ids),
            _list(selection.network_ids),
            _list(selection.names),
            limit,
            after_id,
        )
        return [make(row) for row in rows]

    async def stored_payload_bytes(self, kind: str, ids: list[int]) -> int:
        """What the payloads of these stored items take as JSON, read without sending them."""
        table, size = _size_of(kind)
        total = await self.pool.fetchval(
            f"SELECT sum({size}) FROM {table} WHERE id = any($1::bigint[])",  # noqa: S608
            ids,
        )
        return int(total or 0)

    async def payload_sizes(self, kind: str, ids: list[int]) -> dict[int, int]:
        """``stored_payload_bytes`` item by item (those not found are left out)."""
        table, size = _size_of(kind)
        rows = await self.pool.fetch(
            f"SELECT id, {size} AS size FROM {table} WHERE id = any($1::bigint[])",  # noqa: S608
            ids,
        )
        return {row["id"]: row["size"] for row in rows}

    async def by_ids(self, kind: str, ids: list[int]) -> dict[int, Notification | Command]:
        """Stored items by id, whole (those not found are left out)."""
        table, _, columns, make = KINDS[kind]
        rows = await self.pool.fetch(
            f"SELECT {columns} FROM {table} WHERE id = any($1::bigint[])",  # noqa: S608 - fixed
            ids,
        )
        return {row["id"]: make(row) for row in rows}

    async def purge(self, older_than: float, newer_than: float) -> int:
        """Delete items stamped before ``older_than`` (retention), or after ``newer_than``: a
        time no client could have set under the edge's limit on future timestamps (rows from
        before that limit existed), so nothing could ever age them out. In bounded chunks, so a
        large backlog never holds one long transaction; returns the number of rows deleted."""
        low, high = at(older_than), at(min(newer_than, _LAST_SECOND))
        deleted = 0
        for table, column in (
            ("notifications", '"timestamp"'),
            ("commands", "last_updated"),
            ("dead_letters", "recorded_at"),
        ):
            while True:
                status = await self.pool.execute(
                    f"""DELETE FROM {table} WHERE id IN (
                          SELECT id FROM {table} WHERE {column} < $1 OR {column} > $2
                          LIMIT {_PURGE_CHUNK})""",  # noqa: S608 - fixed identifiers
                    low,
                    high,
                )
                count = int(status.split()[-1])
                deleted += count
                if count < _PURGE_CHUNK:
                    break
        return deleted


def _list(values: Iterable[Any] | None) -> list[Any] | None:
    return None if values is None else list(values)


_LAST_SECOND = 253402300799.0  # 9999-12-31T23:59:59Z: the last moment Python's datetime holds

_PURGE_CHUNK = 10_000


def _size_of(kind: str) -> tuple[str, str]:
    """The table of ``kind`` and the SQL of an item's payload size as JSON text."""
    table, name_column, _, _ = KINDS[kind]
    size = f"octet_length({name_column}) + coalesce(octet_length(parameters::text), 0)"
    if kind == COMMAND:
        size += " + coalesce(octet_length(result::text), 0)"
    return table, size
