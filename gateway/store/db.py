"""The asyncpg pool, with jsonb decoded by orjson."""

from __future__ import annotations

from typing import Any

import asyncpg
import asyncpg.pool
import orjson

Pool = asyncpg.Pool
Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
"""A connection, whether opened alone or taken from the pool."""


def _encode_json(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, encoder=_encode_json, decoder=orjson.loads, schema="pg_catalog"
        )


CONNECT_TIMEOUT = 5.0
"""Bound on opening a connection. asyncpg's default is 60 s: with PostgreSQL cut off (a network
partition, a hung server) every request that needed a new connection waited a minute for its
503, far longer than clients wait."""


ACQUIRE_TIMEOUT = CONNECT_TIMEOUT
"""Bound on waiting for a pooled connection, queueing and connecting together. Unbounded, the
requests beyond the pool's size waited in waves while PostgreSQL was cut off: each wave of
``max_size`` waited out a connect timeout in turn, the last ones minutes for their 503."""


class BoundedPool(asyncpg.Pool):
    """asyncpg's pool, whose every acquisition (the pool's own ``fetch``, ``execute``... go
    through ``acquire`` too) is bounded by ``ACQUIRE_TIMEOUT`` unless the caller says."""

    __slots__ = ()

    def acquire(self, *, timeout: float | None = None) -> Any:
        return super().acquire(timeout=ACQUIRE_TIMEOUT if timeout is None else timeout)


async def create_pool(url: str, *, min_size: int = 0, max_size: int = 10) -> Pool:
    """No floor of idle connections by default: asyncpg restores a floor in the background and
    logs a traceback per attempt while the database is down."""
    # What asyncpg.create_pool does, with the bounded class (it takes no pool class).
    pool = BoundedPool(
        url,
        min_size=min_size,
        max_size=max_size,
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        setup=None,
        init=_init_connection,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        command_timeout=30,
        timeout=CONNECT_TIMEOUT,
    )
    await pool
    return pool


_TRANSIENT_CLASSES = frozenset({"08", "40", "53", "57", "58"})
"""SQLSTATE classes that say "not now" rather than "not this": connection exceptions,
transaction rollbacks (serialization, deadlock), insufficient resources, operator
intervention (shutdown, cannot connect now, cancelled), system errors."""

_TRANSIENT_CODES = frozenset({"25006"})
"""read_only_sql_transaction: the server takes no writes now (a primary demoted to a standby
after a failover, read-only upkeep). Said of every row alike, so it is never the row's fault:
what waits to be written stays pending, a request is answered 503."""


def transient(exc: BaseException) -> bool:
    """True when ``exc`` says the database cannot serve now (retry later), False when it says
    the query or its data is wrong (retrying would fail the same way)."""
    if isinstance(exc, asyncpg.PostgresError):
        code = str(exc.sqlstate or "")
        return code[:2] in _TRANSIENT_CLASSES or code in _TRANSIENT_CODES
    if isinstance(exc, asyncpg.InterfaceError):
        # A closed connection or pool; asyncpg's client-side DataError (a value it cannot
        # encode) is an InterfaceError too, and a ValueError.
        return not isinstance(exc, ValueError)
    if isinstance(exc, asyncpg.exceptions.InternalClientError):
        # "another operation is in progress": a connection the server closed with an error
        # while it was idle (fast shutdown); the pool replaces it.
        return True
    return isinstance(exc, OSError | TimeoutError)
