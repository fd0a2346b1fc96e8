"""Fixtures for the multi-instance tests: real gateway processes on 127.0.0.1 against the
session's PostgreSQL database and a Redis (the shared test Redis with a per-test channel prefix,
or a redis-server the test owns and may stop)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.processes import GatewayProcess, gateway_env
from tests.support.servers import PostgresProcess, RedisProcess, free_port

GATEWAYS = pytest.StashKey[list[GatewayProcess]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed test shows what its gateways logged."""
    report = yield
    if report.failed:
        for gateway in item.stash.get(GATEWAYS, []):
            report.sections.append((f"gateway {gateway.name}", gateway.logs(lines=150)))
    return report


class Cluster:
    """Starts gateway processes for one test; all share its database, Redis and prefix."""

    def __init__(
        self,
        *,
        database_url: str,
        redis_url: str,
        redis_prefix: str,
        tmp_path: Path,
        registry: list[GatewayProcess],
    ) -> None:
        self.database_url = database_url
        self.redis_url = redis_url
        self.redis_prefix = redis_prefix
        self.tmp_path = tmp_path
        self.gateways = registry

    def prepare(
        self,
        name: str,
        *,
        redis_url: str | bool | None = True,
        reconcile_interval: str = "1s",
        args: Sequence[str] = (),
        extra: Mapping[str, str] | None = None,
    ) -> GatewayProcess:
        """A gateway not yet started; ``redis_url=True`` means this cluster's Redis, ``None``
        no Redis at all."""
        data_dir = self.tmp_path / f"data-{name}"
        data_dir.mkdir(parents=True, exist_ok=True)
        env = gateway_env(
            database_url=self.database_url,
            port=free_port(),
            instance_id=f"{name}-{uuid.uuid4().hex[:6]}",
            data_dir=data_dir,
            redis_url=self.redis_url if redis_url is True else (redis_url or None),
            redis_prefix=self.redis_prefix,
            reconcile_interval=reconcile_interval,
            extra=extra,
        )
        gateway = GatewayProcess(name, env, self.tmp_path, args)
        self.gateways.append(gateway)
        return gateway

    async def start(self, *names: str, **options: Any) -> list[GatewayProcess]:
        """Start the named gateways at once and wait until every one is ready."""
        gateways = [self.prepare(name, **options) for name in names]
        for gateway in gateways:
            gateway.start()
        await asyncio.gather(*(gateway.wait_ready() for gateway in gateways))
        return gateways

    def stop_all(self) -> None:
        for gateway in self.gateways:
            gateway.stop()


@contextlib.asynccontextmanager
async def _cluster(
    database_url: str,
    redis_url: str,
    redis_prefix: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Cluster]:
    registry: list[GatewayProcess] = []
    request.node.stash[GATEWAYS] = registry
    cluster = Cluster(
        database_url=database_url,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        tmp_path=tmp_path,
        registry=registry,
    )
    try:
        yield cluster
    finally:
        await asyncio.to_thread(cluster.stop_all)


@pytest.fixture
async def cluster(
    clean_db: str,
    redis_url: str,
    redis_prefix: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Cluster]:
    async with _cluster(clean_db, redis_url, redis_prefix, tmp_path, request) as built:
        yield built


@pytest.fixture
async def own_cluster(
    own_postgres: PostgresProcess,
    redis_url: str,
    redis_prefix: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Cluster]:
    """Gateways on a PostgreSQL the test owns (and may stop)."""
    async with _cluster(own_postgres.url, redis_url, redis_prefix, tmp_path, request) as built:
        yield built


@pytest.fixture
async def pair(cluster: Cluster) -> tuple[GatewayProcess, GatewayProcess]:
    """Two gateways, A and B, on different ports, joined through the test Redis."""
    a, b = await cluster.start("a", "b")
    return a, b


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    """A redis-server this test owns (never the machine's shared one): it may stop and restart
    it; the port stays the same across restarts."""
    server = RedisProcess()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session
