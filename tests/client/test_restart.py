"""A subscription of the SDK across a restart of the gateway process itself (SIGTERM, then a new
process on the same port and database) while another client keeps inserting: every item exactly
once, in order."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.client import GatewayClient, GatewayUnavailable, OutcomeUnknown
from tests.support.processes import ADMIN_EMAIL, ADMIN_PASSWORD, GatewayProcess, gateway_env
from tests.support.servers import free_port

ITEMS = 120


@pytest.fixture
def processes() -> Iterator[list[GatewayProcess]]:
    """Every gateway process the test starts; all are stopped when it ends."""
    started: list[GatewayProcess] = []
    try:
        yield started
    finally:
        for process in started:
            process.stop()


@pytest.fixture
def gateway(clean_db: str, tmp_path: Path, processes: list[GatewayProcess]) -> GatewayProcess:
    """A real ``gateway serve`` process on this test's database, without Redis."""
    env = gateway_env(
        database_url=clean_db,
        port=free_port(),
        instance_id=f"restart-{uuid.uuid4().hex[:6]}",
        data_dir=tmp_path / "data",
    )
    process = GatewayProcess("first", env, tmp_path)
    processes.append(process)
    process.start()
    return process


async def make_device(url: str) -> None:
    async with aiohttp.ClientSession(url) as http:
        login = await http.post(
            "/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        auth = {"Authorization": f"Bearer {(await login.json())['access_token']}"}
        network = await http.post("/v1/networks", json={"name": "plant"}, headers=auth)
        assert network.status == 201
        device = await http.put(
            "/v1/devices/pump-1",
            json={"name": "Pump", "networkId": (await network.json())["id"]},
            headers=auth,
        )
        assert device.status == 201


async def test_a_subscription_survives_a_gateway_restart(
    gateway: GatewayProcess, tmp_path: Path, processes: list[GatewayProcess]
) -> None:
    await gateway.wait_ready()
    await make_device(gateway.url)
    acknowledged: list[int] = []
    uncertain: list[int] = []

    def options() -> dict[str, Any]:
        return {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "backoff_base": 0.05}

    async with (
        GatewayClient(gateway.url, backoff_cap=0.5, **options()) as reader,
        GatewayClient(gateway.url, backoff_cap=0.5, **options()) as writer,
    ):
        start = (await reader.server_info())["serverTimestamp"]
        subscription = await reader.notifications(device_id="pump-1").start()

        async def insert_all() -> None:
            for i in range(ITEMS):
                while True:
                    try:
                        await writer.insert_notification("pump-1", "level", {"i": i})
                    except OutcomeUnknown:
                        uncertain.append(i)
                    except GatewayUnavailable:
                        continue  # not sent: send it again
                    else:
                        acknowledged.append(i)
                    break
                await asyncio.sleep(0.01)

        inserting = asyncio.create_task(insert_all())
        received: list[dict[str, Any]] = []
        async with asyncio.timeout(60):
            while len(received) < 30:
                received.append(await anext(subscription))
            # The restart: SIGTERM (pending items are written, sockets closed with 1001), then
            # a new process on the same port and database.
            before_restart = len(acknowledged)
            await asyncio.to_thread(gateway.stop)
            second = GatewayProcess("second", gateway.env, tmp_path)
            processes.append(second)
            second.start()
            try:
                await second.wait_ready()
                await inserting
                while not set(acknowledged) <= {n["parameters"]["i"] for n in received}:
                    received.append(await anext(subscription))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):  # an uncertain last item may still come
                        while True:
                            received.append(await anext(subscription))
            finally:
                inserting.cancel()
            reconnects = reader.connection.reconnects
            received_i = [n["parameters"]["i"] for n in received]
            async with GatewayClient(second.url, **options()) as auditor:
                stored = auditor.notifications(device_id="pump-1", since=start)
                everything = []
                try:
                    for _ in range(len(received)):
                        everything.append(await asyncio.wait_for(anext(stored), 5))
                except TimeoutError:
                    got = {n["id"] for n in everything}
                    missing = [n for n in received if n["id"] not in got]
                    raise AssertionError(
                        f"{len(everything)} stored of {len(received)} delivered; lost {missing[:5]}"
                        f"\n{second.logs()}\n{gateway.logs()}"
                    ) from None
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.5):
                        await anext(stored)

    assert reconnects >= 1
    assert before_restart < ITEMS, "items were still being inserted across the restart"
    assert received_i == sorted(set(received_i)), "in order, each once"
    assert set(acknowledged) <= set(received_i), "nothing acknowledged is missed"
    assert set(received_i) <= set(acknowledged) | set(uncertain)
    assert [n["id"] for n in received] == [n["id"] for n in everything], "exactly what is stored"
    assert len(acknowledged) >= ITEMS - 5
