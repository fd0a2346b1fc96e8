"""Readiness and outage logging: one line when PostgreSQL becomes unreachable, one when it is
back, none per refused request, and none for a flap while it is still starting."""

from __future__ import annotations

import logging

import asyncpg
import pytest

from gateway.store.db import Pool
from gateway.store.health import DatabaseHealth

REFUSED = ConnectionRefusedError(111, "Connection refused")
STARTING = asyncpg.CannotConnectNowError("the database system is starting up")


async def test_an_outage_is_logged_once_and_its_end_once(
    pool: Pool, caplog: pytest.LogCaptureFixture
) -> None:
    health = DatabaseHealth(pool)
    assert await health.ready()
    with caplog.at_level(logging.INFO, logger="gateway.store"):
        assert all(health.failed(REFUSED) for _ in range(100))
        assert not await health.ready()  # a request saw it down: no need to wait for a probe
        health.succeeded()
        assert health.failed(STARTING)  # the server is still starting: the same outage
        health.succeeded()
    lines = [record.getMessage() for record in caplog.records]
    assert [line for line in lines if "unavailable" in line] == [
        "PostgreSQL unavailable (ConnectionRefusedError: [Errno 111] Connection refused); "
        "requests that need it get 503 until it is back"
    ]
    assert len([line for line in lines if "reachable again" in line]) == 2
    assert "(100 requests refused meanwhile)" in lines[1]
    assert health.outages == 1 and not health.down


async def test_a_bug_is_not_an_outage(pool: Pool) -> None:
    health = DatabaseHealth(pool)
    assert not health.failed(asyncpg.UndefinedTableError('relation "x" does not exist'))
    assert not health.down
    assert await health.ready()
