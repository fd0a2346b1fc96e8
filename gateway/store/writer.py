"""Batch inserts of notifications and commands that one bad row cannot stop.

A batch that fails on its data (not on the connection) is split in halves until the failing
row is alone; that row goes to ``dead_letters`` with its id, payload and error, and everything
else is written. A transient error (connection lost, server shutting down, pool exhausted) is
raised to the caller, which keeps the items pending and retries. Writes are idempotent (keyed
by id): a retry that meets rows of an earlier commit writes the batch again without them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import asyncpg
import orjson

from gateway.clock import at
from gateway.store.db import Pool, transient

log = logging.getLogger("gateway.store")

_MAX_TEXT = 1 << 20


class Item(Protocol):
    @property
    def id(self) -> int: ...

    def to_json(self) -> dict[str, Any]: ...


Done = Callable[[Sequence[Any]], None]


def _dumps(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


_INSERT_NOTIFICATIONS = """INSERT INTO notifications
    (id, device_id, network_id, device_type_id, notification, parameters, "timestamp")
    SELECT (r->>0)::bigint, r->>1, (r->>2)::bigint, (r->>3)::bigint, r->>4,
           nullif(r->5, 'null'::jsonb), to_timestamp((r->>6)::float8)
    FROM jsonb_array_elements($1::jsonb) AS r"""


async def insert_notifications(pool: Pool, items: Sequence[Any], *, again: bool = False) -> None:
    """The whole batch as one JSON document: one orjson call in the loop thread, where seven
    arrays cost asyncpg a codec call and type checks per element (the writer's main share of
    the hot path); PostgreSQL takes the document apart.

    A plain insert first: ``ON CONFLICT`` costs PostgreSQL a speculative insertion per row,
    about a fifth of the row's cost, for a conflict that only a retry can meet. ``again``
    (some ids are stored already: a retry after a commit whose reply was lost) skips those."""
    await pool.execute(
        _INSERT_NOTIFICATIONS + (" ON CONFLICT (id) DO NOTHING" if again else ""),
        [
            (
                n.id,
                n.device_id,
                n.network_id,
                n.device_type_id,
                n.notification,
                n.parameters,
                n.timestamp,
            )
            for n in items
        ],
    )


async def insert_commands(pool: Pool, items: Sequence[Any], *, again: bool = False) -> None:
    """Always an upsert: a command's later state replaces the stored one."""
    await pool.execute(
        """INSERT INTO commands
           (id, device_id, network_id, device_type_id, user_id, command, parameters,
            lifetime, status, result, "timestamp", last_updated)
           SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[],
                                $5::bigint[], $6::text[], $7::text[]::jsonb[],
                                $8::int[], $9::text[], $10::text[]::jsonb[],
                                $11::timestamptz[], $12::timestamptz[])
           ON CONFLICT (id) DO UPDATE SET status = excluded.status,
               result = excluded.result, last_updated = excluded.last_updated
           WHERE commands.last_updated <= excluded.last_updated""",
        [c.id for c in items],
        [c.device_id for c in items],
        [c.network_id for c in items],
        [c.device_type_id for c in items],
        [c.user_id for c in items],
        [c.command for c in items],
        [_dumps(c.parameters) for c in items],
        [c.lifetime for c in items],
        [c.status for c in items],
        [_dumps(c.result) for c in items],
        [at(c.timestamp) for c in items],
        [at(c.last_updated) for c in items],
    )


_INSERTS = {"notification": insert_notifications, "command": insert_commands}


def _text(value: str) -> str:
    """Storable as PostgreSQL text: no NUL, bounded."""
    return value.replace("\x00", "\\u0000")[:_MAX_TEXT]


def payload_of(item: Item) -> str:
    """The item as JSON when it can be encoded, else its repr (the row must be kept anyway)."""
    with contextlib.suppress(Exception):  # e.g. nesting too deep, a year out of range
        return _text(orjson.dumps(item.to_json()).decode())
    with contextlib.suppress(Exception):  # e.g. RecursionError on absurd nesting
        return _text(repr(item))
    return f"<{type(item).__name__} {item.id}: not representable>"


class BatchWriter:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.dead_lettered = 0
        self.lost = 0

    async def write(
        self, kind: str, items: Sequence[Any], done: Done, *, again: bool = False
    ) -> None:
        """Write ``items`` (all of one ``kind``); ``done`` is told each part that is settled
        (written or dead-lettered). Raises only transient errors."""
        try:
            await _INSERTS[kind](self.pool, items, again=again)
        except Exception as exc:
            if isinstance(exc, asyncpg.UniqueViolationError) and not again:
                # Some ids are stored already: a retry after a commit whose reply was lost.
                await self.write(kind, items, done, again=True)
                return
            if transient(exc):
                raise
            if len(items) == 1:
                await self._dead_letter(kind, items[0], exc)
                done(items)
                return
            middle = len(items) // 2
            await self.write(kind, items[:middle], done, again=again)
            await self.write(kind, items[middle:], done, again=again)
            return
        done(items)

    async def _probe_dead_letters(self) -> None:
        """Raises unless dead_letters takes a plain row now (written, then rolled back)."""
        async with self.pool.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            try:
                await conn.execute(
                    "INSERT INTO dead_letters (kind, message_id, payload, error) "
                    "VALUES ('probe', 0, '', '')"
                )
            finally:
                await transaction.rollback()

    async def _dead_letter(self, kind: str, item: Item, error: Exception) -> None:
        sqlstate = getattr(error, "sqlstate", None) or "-"
        try:
            await self.pool.execute(
                "INSERT INTO dead_letters (kind, message_id, payload, error) "
                "VALUES ($1, $2, $3, $4)",
                kind,
                item.id,
                payload_of(item),
                _text(f"{type(error).__name__}: {error}")[:4000],
            )
        except Exception as exc:
            if transient(exc):
                raise
            # Drop it only when dead_letters verifiably takes a plain row: an error of the
            # server or the schema (a table gone, a privilege revoked) misread as this row's
            # must keep the item pending, and the writer retrying, not lose every item.
            await self._probe_dead_letters()
            self.lost += 1
            log.error(
                "%s %d could not be stored (%s, SQLSTATE %s) nor kept in dead_letters (%s): "
                "lost (%d so far)",
                kind,
                item.id,
                type(error).__name__,
                sqlstate,
                type(exc).__name__,
                self.lost,
            )
            return
        self.dead_lettered += 1
        # The id and the error class only: the payload and the message may hold client data.
        log.error(
            "%s %d could not be stored (%s, SQLSTATE %s); kept in dead_letters (%d so far)",
            kind,
            item.id,
            type(error).__name__,
            sqlstate,
            self.dead_lettered,
        )
