"""``gateway serve --workers N``: N processes on one port (SO_REUSEPORT) joined through Redis."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import aiohttp
import pytest

from tests.cluster.conftest import Cluster
from tests.cluster.helpers import Peer, bearer, connect, make_world, ok
from tests.support.processes import REPO_ROOT, gateway_env
from tests.support.servers import free_port

pytestmark = pytest.mark.timeout(90)

CONNECTIONS = 12
"""Sockets opened on the shared port; the kernel spreads them over the workers (the chance that
twelve all land on one of two workers is 1 in 2048)."""


async def sessions_by_worker(
    gateway_url: str, admin: str, wanted: set[str], attempts: int = 80
) -> dict[str, set[str]]:
    """GET /v1/sessions on fresh connections until every worker answered: {instance: jtis}."""
    seen: dict[str, set[str]] = {}
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as fresh:
        for _ in range(attempts):
            async with fresh.get(gateway_url + "/v1/sessions", headers=bearer(admin)) as response:
                assert response.status == 200, await response.text()
                body = await response.json()
            instance = body["instance"]
            assert all(session["instance"] == instance for session in body["sessions"]), body
            seen[instance] = {session["jti"] for session in body["sessions"]}
            if set(seen) >= wanted:
                break
    return seen


async def test_two_workers_share_one_port_and_messages_cross_between_them(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    gateway = cluster.prepare("w", args=["--workers", "2"])
    workers = {f"{gateway.instance_id}-w0", f"{gateway.instance_id}-w1"}
    gateway.start()
    await gateway.wait_ready(instances=sorted(workers))

    world = await make_world(http, gateway)
    peers: list[Peer] = []
    jtis: list[str] = []
    for n in range(CONNECTIONS):
        pair = await ok(http, gateway, "POST", "/v1/auth/token/create", world.admin, {}, status=201)
        info = await ok(http, gateway, "GET", "/v1/auth/tokenInfo", pair["access_token"])
        jtis.append(info["payload"]["jti"])
        # Every socket is a TCP connection of its own, which the kernel gives to one worker.
        peers.append(await connect(http, gateway, pair["access_token"], f"peer{n}"))

    try:
        by_worker = await sessions_by_worker(gateway.url, world.admin, workers)
        assert set(by_worker) == workers, f"only {sorted(by_worker)} answered"
        assert all(by_worker.values()), f"a worker got no socket: {by_worker}"
        where = {jti: instance for instance, found in by_worker.items() for jti in found}
        assert sorted(where) == sorted(jtis), "every socket is listed by exactly one worker"
        assert sum(len(found) for found in by_worker.values()) == CONNECTIONS

        grouped: defaultdict[str, list[Peer]] = defaultdict(list)
        for jti, peer in zip(jtis, peers, strict=True):
            grouped[where[jti]].append(peer)
        first, second = (grouped[instance][0] for instance in sorted(workers))

        # A notification inserted on one worker reaches a subscriber on the other, both ways.
        for source, sink, name in ((first, second, "w0->w1"), (second, first, "w1->w0")):
            subscription = await sink.subscribe(deviceId=world.device_id)
            await source.ok(
                "notification/insert",
                deviceId=world.device_id,
                notification={"notification": name},
            )
            push = await sink.push("notification/insert")
            assert (push["subscriptionId"], push["notification"]["notification"]) == (
                subscription,
                name,
            )
            await sink.ok("notification/unsubscribe", subscriptionId=subscription)
    finally:
        for peer in peers:
            await peer.close()

    # SIGTERM to the parent stops every worker, cleanly.
    assert gateway.stop() == 0, gateway.logs()


@pytest.mark.timeout(60)
def test_more_than_one_worker_without_redis_is_refused_with_one_clear_line(
    database_url: str, tmp_path: Path
) -> None:
    env = gateway_env(
        database_url=database_url,
        port=free_port(),
        instance_id="lonely",
        data_dir=tmp_path,
    )
    assert "GATEWAY_REDIS_URL" not in env
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--workers", "2"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2, result
    assert result.stderr.splitlines() == [
        "gateway: configuration error: --workers > 1 needs GATEWAY_REDIS_URL: "
        "the workers share sessions through Redis"
    ]
    assert result.stdout == ""


async def test_each_worker_serves_its_metrics_on_its_own_port(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    metrics_port = free_port()
    gateway = cluster.prepare(
        "m", args=["--workers", "2"], extra={"GATEWAY_METRICS_PORT": str(metrics_port)}
    )
    workers = [f"{gateway.instance_id}-w0", f"{gateway.instance_id}-w1"]
    gateway.start()
    await gateway.wait_ready(instances=workers)
    for port in (metrics_port, metrics_port + 1):
        async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert response.status == 200
            assert "gateway_ws_sessions 0.0" in await response.text()
    async with http.get(gateway.url + "/metrics") as response:
        assert response.status == 404
