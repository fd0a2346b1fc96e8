"""PostgreSQL stopped and started under traffic (a cluster the test owns: initdb into a temporary
directory, never the machine's shared server): REST answers 503 with Retry-After meanwhile,
live sessions and local fan-out go on, everything acknowledged is stored once it is back, and
inserts and readiness recover without a restart. Also: Redis restarted while PostgreSQL is down,
and cross-instance fan-out still comes back."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.cluster.conftest import Cluster
from tests.cluster.helpers import Peer, call, connect, device_token, eventually, make_world
from tests.support.processes import GatewayProcess
from tests.support.servers import PostgresProcess, RedisProcess

pytestmark = pytest.mark.timeout(120)

OUTAGE = 5.0
RATE = 150.0
"""notification/insert per second over the WebSocket, all through the run."""
REST_EVERY = 0.05
READY_EVERY = 0.1
RECOVERY = 2.0
"""Inserts and REST requests succeed again within this long after PostgreSQL is back."""
WARM_UP = 1250
"""Inserts before the timed run: the gateway's next id-block request then falls inside the
outage (blocks are 1000 ids, the next one asked for half-way), so numbering must recover."""


@dataclass
class Timeline:
    inserts: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    rest: list[tuple[float, int, dict[str, Any] | None, str | None]] = field(default_factory=list)
    ready: list[tuple[float, int]] = field(default_factory=list)


async def paced_inserts(peer: Peer, device_id: str, stop: asyncio.Event, out: Timeline) -> None:
    """RATE inserts a second on a schedule (not waiting for replies), each reply recorded with
    the time its request was sent."""

    async def one(sent: float, n: int) -> None:
        reply = await peer.request(
            "notification/insert",
            deviceId=device_id,
            notification={"notification": "reading", "parameters": {"n": n}},
        )
        out.inserts.append((sent, reply))

    started = time.monotonic()
    pending: list[asyncio.Task[None]] = []
    n = 0
    while not stop.is_set():
        n += 1
        await asyncio.sleep(max(0.0, started + n / RATE - time.monotonic()))
        pending.append(asyncio.create_task(one(time.monotonic(), n)))
    await asyncio.gather(*pending)


async def rest_requests(
    http: aiohttp.ClientSession,
    gateway: GatewayProcess,
    token: str,
    stop: asyncio.Event,
    out: Timeline,
) -> None:
    """A request that needs PostgreSQL (the network list), every REST_EVERY seconds."""
    while not stop.is_set():
        sent = time.monotonic()
        status, body, headers = await call(http, gateway, "GET", "/v1/networks", token)
        out.rest.append((sent, status, body if status != 200 else None, headers.get("Retry-After")))
        await asyncio.sleep(REST_EVERY)


async def readiness(
    http: aiohttp.ClientSession, gateway: GatewayProcess, stop: asyncio.Event, out: Timeline
) -> None:
    while not stop.is_set():
        sent = time.monotonic()
        status, _ = await gateway.readyz(http)
        out.ready.append((sent, status))
        await asyncio.sleep(READY_EVERY)


async def stored_ids(url: str) -> set[int]:
    conn = await asyncpg.connect(url)
    try:
        return {row["id"] for row in await conn.fetch("SELECT id FROM notifications")}
    finally:
        await conn.close()


async def test_postgres_stopped_for_five_seconds_under_traffic(
    own_cluster: Cluster,
    own_postgres: PostgresProcess,
    http: aiohttp.ClientSession,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (gateway,) = await own_cluster.start(
        "a", redis_url=None, extra={"GATEWAY_WS_RATE": "5000", "GATEWAY_WS_BURST": "5000"}
    )
    world = await make_world(http, gateway)
    device = await connect(
        http, gateway, (await device_token(http, gateway, world))["access_token"], "device"
    )
    watcher = await connect(http, gateway, world.admin, "watcher")
    await watcher.subscribe(deviceId=world.device_id)
    warm_up: list[dict[str, Any]] = []
    for _ in range(WARM_UP // 250):  # in chunks: queues stay under the slow-consumer limit
        warm_up += await asyncio.gather(
            *(
                device.request(
                    "notification/insert",
                    deviceId=world.device_id,
                    notification={"notification": "w"},
                )
                for _ in range(250)
            )
        )
    assert {reply["status"] for reply in warm_up} == {"success"}

    timeline = Timeline()
    stop = asyncio.Event()
    loads = [
        asyncio.create_task(paced_inserts(device, world.device_id, stop, timeline)),
        asyncio.create_task(rest_requests(http, gateway, world.admin, stop, timeline)),
        asyncio.create_task(readiness(http, gateway, stop, timeline)),
    ]
    await asyncio.sleep(1.0)
    await asyncio.to_thread(own_postgres.stop)
    down = time.monotonic()
    await asyncio.sleep(OUTAGE)
    up_requested = time.monotonic()
    await asyncio.to_thread(own_postgres.start)
    up = time.monotonic()
    await asyncio.sleep(RECOVERY + 2.0)
    stop.set()
    await asyncio.gather(*loads)
    outage = up - down

    # -- REST: 503 with Retry-After and the JSON error body while PostgreSQL is down ---------
    assert {status for _, status, _, _ in timeline.rest} <= {200, 503}, gateway.logs(400)
    during = [entry for entry in timeline.rest if down + 0.1 <= entry[0] < up_requested]
    assert during and {status for _, status, _, _ in during} == {503}
    for _, _, body, retry_after in during:
        assert retry_after == "1"
        assert body is not None and set(body) == {"message", "request_id"}
        assert body["message"] == "Database unavailable; retry later"
    rest_after = [status for sent, status, _, _ in timeline.rest if sent >= up + RECOVERY]
    assert rest_after and set(rest_after) == {200}
    rest_back = min(sent for sent, status, _, _ in timeline.rest if sent >= up and status == 200)

    # -- inserts: acknowledged or refused with 503, never a 500; back within RECOVERY --------
    codes = {reply.get("code") for _, reply in timeline.inserts if reply["status"] != "success"}
    assert codes <= {503}, codes
    refused = [sent for sent, reply in timeline.inserts if reply["status"] != "success"]
    after = [reply["status"] for sent, reply in timeline.inserts if sent >= up + RECOVERY]
    assert after and set(after) == {"success"}
    late_failures = [sent - up for sent in refused if sent >= up]
    assert all(delay < RECOVERY for delay in late_failures), late_failures

    # -- readiness: 503 during, 200 after --------------------------------------------------
    ready_during = {status for sent, status in timeline.ready if down + 0.6 <= sent < up_requested}
    assert ready_during == {503}
    ready_after = {status for sent, status in timeline.ready if sent >= up + RECOVERY}
    assert ready_after == {200}

    # -- stored = acknowledged, and the live session saw every acknowledged insert ----------
    acked = {
        reply["notification"]["id"]
        for reply in [*warm_up, *(reply for _, reply in timeline.inserts)]
        if reply["status"] == "success"
    }
    await eventually(lambda: _equal(own_postgres.url, acked), timeout=10)
    pushed = set()
    while not watcher.pushes.empty():
        pushed.add(watcher.pushes.get_nowait()["notification"]["id"])
    assert pushed == acked

    log = gateway.stderr()
    assert log.count("PostgreSQL unavailable") == 1, gateway.logs(200)
    assert "unhandled error" not in log
    assert log.count("Traceback") <= 5, gateway.logs(200)  # one per supervised loop at most
    with capsys.disabled():
        print(
            f"\nPostgreSQL outage {outage:.1f} s: REST {len(timeline.rest)} requests, "
            f"{sum(1 for e in timeline.rest if e[1] == 503)} x 503 (Retry-After), first 200 "
            f"{rest_back - up:.2f} s after the restart; inserts {len(timeline.inserts)} sent at "
            f"{RATE:.0f}/s, {len(refused)} x 503, last refused "
            f"{max(late_failures, default=0.0):.2f} s after the restart; acknowledged "
            f"{len(acked)} = stored {len(await stored_ids(own_postgres.url))}"
        )


async def _equal(url: str, acked: set[int]) -> bool:
    return await stored_ids(url) == acked


async def test_redis_restarted_while_postgres_is_down_fan_out_still_returns(
    own_cluster: Cluster,
    own_postgres: PostgresProcess,
    http: aiohttp.ClientSession,
) -> None:
    """The resynchronization that follows a Redis reconnect needs PostgreSQL; it waits for it
    in its own task, so messages between instances flow as soon as Redis is back."""
    own_redis = RedisProcess()
    own_redis.start()
    try:
        a, b = await own_cluster.start("a", "b", redis_url=own_redis.url)
        world = await make_world(http, a)
        device = await connect(
            http, a, (await device_token(http, a, world))["access_token"], "device@A"
        )
        watcher = await connect(http, b, world.admin, "watcher@B")
        await watcher.subscribe(deviceId=world.device_id)
        await device.ok(  # A takes its first block of ids while PostgreSQL is up
            "notification/insert", deviceId=world.device_id, notification={"notification": "up"}
        )
        await watcher.push("notification/insert")

        await asyncio.to_thread(own_postgres.stop)
        own_redis.stop()
        for gateway in (a, b):
            await eventually(partial(_readiness_is, http, gateway, False, False), timeout=10)
        own_redis.start()

        async def crosses() -> bool:
            reply = await device.ok(
                "notification/insert",
                deviceId=world.device_id,
                notification={"notification": "across"},
            )
            # A push of an earlier round may arrive late (a loaded machine): it is skipped, or
            # every later round would compare its id with the round before and never match.
            deadline = time.monotonic() + 0.5
            while (remaining := deadline - time.monotonic()) > 0:
                try:
                    push = await watcher.push("notification/insert", timeout=remaining)
                except AssertionError:
                    return False
                if push["notification"]["id"] == reply["notification"]["id"]:
                    return True
            return False

        took = await eventually(crosses, timeout=15, every=0.1)
        # PostgreSQL is still down: not ready, however the bus is doing.
        for gateway in (a, b):
            status, body = await gateway.readyz(http)
            assert (status, body["database"]) == (503, False)

        await asyncio.to_thread(own_postgres.start)
        for gateway in (a, b):
            await eventually(partial(_readiness_is, http, gateway, True, True), timeout=15)
        assert took < 15
    finally:
        own_redis.stop()


async def _readiness_is(
    http: aiohttp.ClientSession, gateway: GatewayProcess, database: bool, bus: bool
) -> bool:
    status, body = await gateway.readyz(http)
    return (status, body["database"], body["bus"]) == (
        200 if database and bus else 503,
        database,
        bus,
    )
