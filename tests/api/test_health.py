"""GET /healthz (the process is alive) and GET /readyz (the database answers)."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from gateway.app import WIRING_KEY
from tests.conftest import AppFactory
from tests.support.http import expect_json


async def test_healthz(client: TestClient[Any, Any]) -> None:
    assert await expect_json(await client.get("/healthz"), 200) == {"status": "ok"}


async def test_readyz_reports_the_database_and_the_bus(client: TestClient[Any, Any]) -> None:
    instance = client.app[WIRING_KEY].settings.instance_id
    body = await expect_json(await client.get("/readyz"), 200)
    assert body == {"database": True, "bus": True, "instance": instance}


async def test_readyz_is_503_when_the_database_is_gone(make_client: AppFactory) -> None:
    client = await make_client()
    services = client.app[WIRING_KEY]
    await services.pool.close()
    assert await expect_json(await client.get("/healthz"), 200) == {"status": "ok"}
    body = await expect_json(await client.get("/readyz"), 503)
    assert body == {"database": False, "bus": True, "instance": services.settings.instance_id}
