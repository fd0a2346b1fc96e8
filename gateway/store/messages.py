"""Notifications and commands: numbered in memory, acknowledged at once, written in batches.

Ids come in blocks from a sequence, so numbering never waits on the database. Items stay in the
pending set until their batch is committed, which lets a replay include what was acknowledged but
not yet written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection, Iterable
from typing import Any

import orjson

from gateway.clock import at
from gateway.store.db import Pool
from gateway.types import COMMAND, NOTIFICATION, Command, Notification

log = logging.getLogger(__name__)

_BLOCK = 1000  # the sequence's INCREMENT BY


def _dumps(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


class MessageStore:
    def __init__(self, pool: Pool, *, interval: float, batch: int) -> None:
        self.pool = pool
        self.interval = interval
        self.batch = batch
        self._next = 0
        self._end = 0
        self._spare: int | None = None
        self._refill: asyncio.Task[None] | None = None
        self._notifications: dict[int, Notification] = {}
        self._commands: dict[int, Command] = {}
        self._wake = asyncio.Event()
        self._closed = False

    # -- numbering -------------------------------------------------------------------------

    async def _take_block(self) -> int:
        start: int = await self.pool.fetchval("SELECT nextval('message_id_blocks')")
        return start

    async def _prefetch(self) -> None:
        self._spare = await self._take_block()

    async def next_id(self) -> int:
        """Returns without touching the database except once per block."""
        if self._next >= self._end:
            if self._refill is not None:
                await self._refill
                self._refill = None
            start = self._spare if self._spare is not None else await self._take_block()
            self._spare = None
            self._next, self._end = start, start + _BLOCK
        value = self._next
        self._next += 1
        if self._end - self._next == _BLOCK // 2 and self._refill is None and self._spare is None:
            self._refill = asyncio.create_task(self._prefetch())
        return value

    # -- writing ---------------------------------------------------------------------------

    def add_notification(self, item: Notification) -> None:
        self._notifications[item.id] = item
        if len(self._notifications) >= self.batch:
            self._wake.set()

    def put_command(self, item: Command) -> None:
        """A new command or a new state of one; the latest state is what gets written."""
        self._commands[item.id] = item
        if len(self._commands) >= self.batch:
            self._wake.set()

    def pending(self, kind: str) -> list[Notification | Command]:
        """What is acknowledged but not yet written (``kind``: notification or command)."""
        items = self._notifications if kind == NOTIFICATION else self._commands
        return list(items.values())

    async def flush(self) -> None:
        notifications = list(self._notifications.values())[: self.batch]
        commands = list(self._commands.values())[: self.batch]
        if notifications:
            await self.pool.execute(
                """INSERT INTO notifications
                   (id, device_id, network_id, device_type_id, notification, parameters,
                    "timestamp")
                   SELECT i, d, n, t, name, p, to_timestamp(ts)
                   FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[],
                               $5::text[], $6::text[]::jsonb[], $7::float8[])
                        AS batch (i, d, n, t, name, p, ts)
                   ON CONFLICT (id) DO NOTHING""",
                [n.id for n in notifications],
                [n.device_id for n in notifications],
                [n.network_id for n in notifications],
                [n.device_type_id for n in notifications],
                [n.notification for n in notifications],
                [_dumps(n.parameters) for n in notifications],
                [n.timestamp for n in notifications],
            )
            for n in notifications:
                self._notifications.pop(n.id, None)
        if commands:
            await self.pool.execute(
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
                [c.id for c in commands],
                [c.device_id for c in commands],
                [c.network_id for c in commands],
                [c.device_type_id for c in commands],
                [c.user_id for c in commands],
                [c.command for c in commands],
                [_dumps(c.parameters) for c in commands],
                [c.lifetime for c in commands],
                [c.status for c in commands],
                [_dumps(c.result) for c in commands],
                [at(c.timestamp) for c in commands],
                [at(c.last_updated) for c in commands],
            )
            for c in commands:
                if self._commands.get(c.id) is c:
                    del self._commands[c.id]

    async def run(self) -> None:
        """Write what is pending every ``interval`` (sooner when a batch fills up)."""
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            try:
                await self.flush()
            except (TimeoutError, OSError) as exc:
                log.warning("writing messages failed, will retry: %s", exc)
                await asyncio.sleep(min(1.0, self.interval * 10))
            except Exception:
                log.exception("writing messages failed, will retry")
                await asyncio.sleep(min(1.0, self.interval * 10))

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
        while self._notifications or self._commands:
            await self.flush()

    # -- reading ---------------------------------------------------------------------------

    async def get_command(self, command_id: int) -> Command | None:
        pending = self._commands.get(command_id)
        if pending is not None:
            return pending
        row = await self.pool.fetchrow("SELECT * FROM commands WHERE id = $1", command_id)
        return None if row is None else _command(row)

    async def since(
        self,
        kind: str,
        since: float,
        *,
        device_ids: Collection[str] | None,
        network_ids: Collection[int] | None,
        names: Collection[str] | None,
        limit: int,
    ) -> list[Notification | Command]:
        """Stored notifications or commands newer than ``since``, oldest first."""
        table, name_column, make = _KINDS[kind]
        rows = await self.pool.fetch(
            f"""SELECT * FROM {table} WHERE "timestamp" > $1
                  AND ($2::text[] IS NULL OR device_id = any($2::text[]))
                  AND ($3::bigint[] IS NULL OR network_id = any($3::bigint[]))
                  AND ($4::text[] IS NULL OR {name_column} = any($4::text[]))
                ORDER BY "timestamp", id LIMIT $5""",  # noqa: S608 - fixed identifiers
            at(since),
            _list(device_ids),
            _list(network_ids),
            _list(names),
            limit,
        )
        return [make(row) for row in rows]

    async def purge(self, older_than: float) -> None:
        cutoff = at(older_than)
        await self.pool.execute('DELETE FROM notifications WHERE "timestamp" < $1', cutoff)
        await self.pool.execute("DELETE FROM commands WHERE last_updated < $1", cutoff)


def _list(values: Iterable[Any] | None) -> list[Any] | None:
    return None if values is None else list(values)


def _notification(row: Any) -> Notification:
    return Notification(
        id=row["id"],
        device_id=row["device_id"],
        network_id=row["network_id"],
        device_type_id=row["device_type_id"],
        notification=row["notification"],
        parameters=row["parameters"],
        timestamp=row["timestamp"].timestamp(),
    )


def _command(row: Any) -> Command:
    return Command(
        id=row["id"],
        device_id=row["device_id"],
        network_id=row["network_id"],
        device_type_id=row["device_type_id"],
        user_id=row["user_id"],
        command=row["command"],
        parameters=row["parameters"],
        lifetime=row["lifetime"],
        status=row["status"],
        result=row["result"],
        timestamp=row["timestamp"].timestamp(),
        last_updated=row["last_updated"].timestamp(),
    )


_KINDS: dict[str, tuple[str, str, Callable[[Any], Notification | Command]]] = {
    NOTIFICATION: ("notifications", "notification", _notification),
    COMMAND: ("commands", "command", _command),
}
