"""The flush barrier between instances: a replay or a command look-up on one instance reads
PostgreSQL once every instance has written what it acknowledged before, and waiting for it
never holds up the socket's other requests."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
import redis.asyncio as aioredis

from tests.cluster.conftest import Cluster
from tests.cluster.helpers import connect, make_world

pytestmark = pytest.mark.timeout(60)


async def test_a_command_updated_on_a_right_after_its_insert_on_b_is_found(
    cluster: Cluster,
) -> None:
    """B writes every 2 s here: the update on A finds the command only because B answers A's
    barrier once it has written it (a fixed wait of two persist intervals would be 4 s)."""
    a, b = await cluster.start("a", "b", extra={"GATEWAY_PERSIST_INTERVAL": "2s"})
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        world = await make_world(http, a)
        sender = await connect(http, b, world.admin, "sender@B")
        device = await connect(http, a, world.admin, "device@A")
        for n in range(3):
            inserted = await sender.ok(
                "command/insert", deviceId=world.device_id, command={"command": f"c{n}"}
            )
            started = time.monotonic()
            await device.ok(
                "command/update",
                deviceId=world.device_id,
                commandId=inserted["command"]["id"],
                command={"status": "done"},
            )
            assert time.monotonic() - started < 4.0


async def test_unknown_command_ids_never_hold_up_the_socket(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    """A silent listener on the control channel (a plain Redis subscriber) never answers a
    barrier, so each look-up of an unknown id waits the barrier's bound (1 s) before its 404.
    Ten of them in a row, then server/info: the info is answered at once, the ten 404s come
    together about a second later (they used to take a second each, on the read loop)."""
    a, _ = await cluster.start("a", "b")
    world = await make_world(http, a)
    device = await connect(http, a, world.admin, "device@A")
    silent = aioredis.Redis.from_url(cluster.redis_url)
    pubsub = silent.pubsub()
    try:
        await pubsub.subscribe(f"{cluster.redis_prefix}:ctl")
        started = time.monotonic()
        updates = [
            asyncio.create_task(
                device.request(
                    "command/update",
                    deviceId=world.device_id,
                    commandId=10**12 + n,
                    command={"status": "done"},
                )
            )
            for n in range(10)
        ]
        await asyncio.sleep(0)  # the ten are sent first
        await device.ok("server/info")
        assert time.monotonic() - started < 0.5
        replies = await asyncio.gather(*updates)
        took = time.monotonic() - started
        assert [r["code"] for r in replies] == [404] * 10
        assert replies[0]["error"] == f"Command {10**12} not found for device {world.device_id}"
        assert 0.9 <= took < 3.0, f"the 404s came after {took:.3f} s"
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await silent.aclose()
