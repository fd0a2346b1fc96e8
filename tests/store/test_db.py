"""Which database errors mean "not now" (retry, 503) and which mean "not this" (dead letter,
500): the writer and the error mapping both decide by this."""

from __future__ import annotations

import asyncpg
import pytest
from asyncpg.exceptions import _base

from gateway.store.db import transient

NOT_NOW = [
    ConnectionRefusedError(111, "Connection refused"),
    TimeoutError(),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.CannotConnectNowError("the database system is starting up"),
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.TooManyConnectionsError("sorry, too many clients already"),
    asyncpg.SerializationError("could not serialize access"),
    asyncpg.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only transaction"),
    asyncpg.InterfaceError("connection is closed"),
    _base.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
]

NOT_THIS = [
    asyncpg.DataError("invalid input for query argument $8 (value out of int32 range)"),
    _base.DataError("invalid input for query argument $1"),  # the client-side one
    asyncpg.UntranslatableCharacterError("unsupported Unicode escape sequence"),
    asyncpg.UndefinedTableError('relation "notifications" does not exist'),
    asyncpg.UniqueViolationError("duplicate key value"),
    ValueError("recursion limit exceeded"),
    OverflowError("date value out of range"),
]


@pytest.mark.parametrize("error", NOT_NOW, ids=lambda e: type(e).__name__)
def test_outages_are_transient(error: Exception) -> None:
    assert transient(error)


@pytest.mark.parametrize("error", NOT_THIS, ids=lambda e: type(e).__name__)
def test_bad_data_and_bugs_are_not(error: Exception) -> None:
    assert not transient(error)
