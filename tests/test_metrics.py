"""GET /metrics: Prometheus text that prometheus-client's own parser reads, whose values follow
what clients do (sessions, messages, pushes, denials, closes, logins, revocations, HTTP)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ADMIN_EMAIL, AppFactory, bearer, login
from tests.realtime.helpers import ALICE_EMAIL, BOB_EMAIL, PASSWORD, build_world, connect, insert
from tests.support.servers import free_port

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

FAMILIES = {
    "gateway_ws_sessions",
    "gateway_ws_messages",
    "gateway_ws_pushes",
    "gateway_ws_denied",
    "gateway_ws_closed",
    "gateway_revocations",
    "gateway_revocation_close_seconds",
    "gateway_logins",
    "gateway_http_requests",
    "gateway_http_request_duration_seconds",
    "gateway_persist_pending",
    "gateway_persist_pending_bytes",
    "gateway_persist_written",
    "gateway_persist_failed",
    "gateway_bus_connected",
    "gateway_persist_dead_lettered",
    "gateway_bus_reconnects",
    "gateway_bus_skipped",
    "gateway_db_pool_in_use",
}


def parse(text: str) -> tuple[set[str], Samples]:
    families = list(text_string_to_metric_families(text))
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in families
        for sample in family.samples
    }
    return {family.name for family in families}, samples


async def scrape(client: TestClient[Any, Any]) -> Samples:
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    _, samples = parse(await response.text())
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape_until(client: TestClient[Any, Any], ready: Callable[[Samples], bool]) -> Samples:
    """Scrape until ``ready`` holds (closes and batch writes land a moment after the event)."""
    for _ in range(500):
        samples = await scrape(client)
        if ready(samples):
            return samples
        await asyncio.sleep(0.01)
    raise AssertionError(f"metrics never settled: {samples}")


async def test_every_family_is_exposed_from_the_start(client: TestClient[Any, Any]) -> None:
    response = await client.get("/metrics")
    names, samples = parse(await response.text())
    assert names >= FAMILIES
    assert value(samples, "gateway_ws_sessions") == 0
    assert value(samples, "gateway_bus_connected") == 1
    assert value(samples, "gateway_persist_pending") == 0
    assert 0 <= value(samples, "gateway_db_pool_in_use") <= 10


async def test_values_follow_what_clients_do(make_client: AppFactory) -> None:
    client = await make_client(login_failures_per_account=2, login_failure_window=60.0)
    world = await build_world(client)  # three successful logins
    for _ in range(2):
        response = await client.post(
            "/v1/auth/login", json={"email": ALICE_EMAIL, "password": "wrong"}
        )
        assert response.status == 401
    response = await client.post(
        "/v1/auth/login", json={"email": ALICE_EMAIL, "password": PASSWORD}
    )
    assert response.status == 429
    response = await client.patch(
        f"/v1/users/{world.bob_id}", json={"status": "disabled"}, headers=bearer(world.admin)
    )
    assert response.status == 200
    response = await client.post("/v1/auth/login", json={"email": BOB_EMAIL, "password": PASSWORD})
    assert response.status == 403
    response = await client.patch(
        f"/v1/users/{world.bob_id}", json={"status": "active"}, headers=bearer(world.admin)
    )
    assert response.status == 200
    world.bob = (await login(client, BOB_EMAIL, PASSWORD))["access_token"]

    alice = await connect(client, world.alice)
    bob = await connect(client, world.bob)
    anonymous = await connect(client)
    samples = await scrape(client)
    assert value(samples, "gateway_ws_sessions") == 3

    await alice.subscribe()
    for _ in range(3):
        await alice.ok("server/info")
    await anonymous.fails(
        "device/get", 401, "Not authenticated: send authenticate with an access token",
        deviceId="d1",
    )  # fmt: skip
    await anonymous.fails("no/such", 400, "Unknown action: 'no/such'")
    await insert(bob, "d2", "ignored-by-alice")
    await insert(await connect(client, world.admin), "d1", "temperature")
    await alice.push()

    response = await client.post("/v1/auth/logout", headers=bearer(world.alice))
    assert response.status == 204
    assert await alice.closed() == (4003, "token revoked: logout")
    await anonymous.close()

    samples = await scrape_until(
        client,
        lambda samples: (
            value(samples, "gateway_ws_sessions") == 2
            and value(samples, "gateway_persist_written_total") == 2
        ),
    )
    assert value(samples, "gateway_logins_total", outcome="success") == 4
    assert value(samples, "gateway_logins_total", outcome="disabled") == 1
    assert value(samples, "gateway_logins_total", outcome="invalid") == 2
    assert value(samples, "gateway_logins_total", outcome="throttled") == 1
    assert value(samples, "gateway_revocations_total", reason="user disabled") == 1
    assert value(samples, "gateway_ws_messages_total", action="server/info") == 3
    assert value(samples, "gateway_ws_messages_total", action="notification/subscribe") == 1
    assert value(samples, "gateway_ws_messages_total", action="notification/insert") == 2
    assert value(samples, "gateway_ws_messages_total", action="unknown") == 1
    assert value(samples, "gateway_ws_denied_total", reason="unauthenticated") == 1
    assert value(samples, "gateway_ws_pushes_total", kind="notification") == 1
    assert value(samples, "gateway_ws_closed_total", code="4003") == 1
    assert value(samples, "gateway_ws_closed_total", code="1000") == 1
    assert value(samples, "gateway_revocations_total", reason="logout") == 1
    assert value(samples, "gateway_revocation_close_seconds_count") == 1
    assert 0 < value(samples, "gateway_revocation_close_seconds_sum") < 1.0
    assert value(samples, "gateway_revocation_close_seconds_bucket", le="1.0") == 1
    assert value(samples, "gateway_persist_written_total") == 2
    assert value(samples, "gateway_persist_failed_total") == 0
    assert value(samples, "gateway_persist_pending") == 0
    assert (
        value(
            samples,
            "gateway_http_requests_total",
            method="POST",
            route="/v1/auth/login",
            status="401",
        )
        == 2
    )
    assert (
        value(
            samples,
            "gateway_http_requests_total",
            method="POST",
            route="/v1/auth/logout",
            status="204",
        )
        == 1
    )
    assert (
        value(
            samples,
            "gateway_http_request_duration_seconds_count",
            method="POST",
            route="/v1/auth/login",
        )
        == 8
    )


async def test_a_rate_limited_socket_counts_as_denied(make_client: AppFactory) -> None:
    client = await make_client(ws_rate=0.001, ws_burst=1)
    world = await build_world(client)
    peer = await connect(client, world.admin)
    await peer.ok("server/info")
    await peer.fails("server/info", 429, "Rate limit exceeded; slow down")
    samples = await scrape(client)
    assert value(samples, "gateway_ws_denied_total", reason="rate_limited") == 1
    assert value(samples, "gateway_ws_messages_total", action="server/info") == 2


async def test_unknown_paths_share_one_label(client: TestClient[Any, Any]) -> None:
    for path in ("/nope", "/v1/users/1/../../etc", "/x" * 50):
        assert (await client.get(path)).status == 404
    samples = await scrape(client)
    labels = {
        dict(key[1]).get("route") for key in samples if key[0] == "gateway_http_requests_total"
    }
    assert labels == {"unmatched"}


async def test_each_app_counts_on_its_own(make_client: AppFactory) -> None:
    first = await make_client()
    second = await make_client()
    response = await first.post("/v1/auth/login", json={"email": ADMIN_EMAIL, "password": "wrong"})
    assert response.status == 401
    assert value(await scrape(first), "gateway_logins_total", outcome="invalid") == 1
    assert value(await scrape(second), "gateway_logins_total", outcome="invalid") == 0


async def test_metrics_off(make_client: AppFactory) -> None:
    client = await make_client(metrics=False)
    response = await client.get("/metrics")
    assert response.status == 404
    assert (await response.json())["message"] == "Not found"


async def test_metrics_on_their_own_port(make_client: AppFactory) -> None:
    port = free_port()
    client = await make_client(metrics_port=port)
    assert (await client.get("/metrics")).status == 404
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        assert response.status == 200
        names, _ = parse(await response.text())
    assert names >= FAMILIES
