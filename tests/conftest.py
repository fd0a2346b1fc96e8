"""Fixtures: a real PostgreSQL database made for this run, a real Redis, and the gateway
served over real HTTP and WebSocket on 127.0.0.1."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.config import Settings
from gateway.store.db import Pool, create_pool
from gateway.store.migrations import migrate
from tests.support.servers import (
    PostgresProcess,
    postgres_server,
    redis_server,
    scratch_database,
)

# Suites outside tests/realtime use its helpers too; whoever imports them first, they are
# rewritten (their asserts explain a failure).
pytest.register_assert_rewrite("tests.realtime.helpers")

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-password"
JWT_SECRET = "test-secret-0123456789-abcdefghijklmnop"

_TABLES = (
    "users, login_sessions, refresh_tokens, revocations, networks, user_networks, devices, "
    "notifications, commands, dead_letters, device_types, user_device_types, configuration, plugins"
)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with postgres_server() as (server, _), scratch_database(server) as url:

        async def prepare() -> None:
            conn = await asyncpg.connect(url)
            try:
                await migrate(conn)
            finally:
                await conn.close()

        asyncio.run(prepare())
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_server() as (url, _):
        yield url


@pytest.fixture
async def clean_db(database_url: str) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"TRUNCATE {_TABLES} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()
    return database_url


@pytest.fixture
def own_postgres() -> Iterator[PostgresProcess]:
    """A PostgreSQL the test starts and stops itself: fault tests never touch the shared one."""
    server = PostgresProcess()
    server.start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
async def pool(clean_db: str) -> AsyncIterator[Pool]:
    """A pool on this test's freshly truncated database, for tests below the HTTP edge."""
    pool = await create_pool(clean_db, min_size=1, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()


def make_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    """Cheap argon2 so tests run fast; everything else as in production."""
    base = Settings(
        database_url=database_url,
        data_dir=data_dir,
        jwt_secret=JWT_SECRET,
        admin_email=ADMIN_EMAIL,
        admin_password=ADMIN_PASSWORD,
        argon2_time_cost=1,
        argon2_memory_kib=64,
        argon2_parallelism=1,
        instance_id=f"test-{uuid.uuid4().hex[:6]}",
        reconcile_interval=0.5,
        persist_interval=0.02,
    )
    return base.with_overrides(**overrides)


@pytest.fixture
def settings(clean_db: str, tmp_path: Path) -> Settings:
    return make_settings(clean_db, tmp_path)


AppFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def make_client(aiohttp_client: Any, clean_db: str, tmp_path: Path) -> AppFactory:
    """Start a gateway with settings overrides; every one shares this test's database."""

    async def start(**overrides: Any) -> TestClient[Any, Any]:
        settings = make_settings(clean_db, tmp_path, **overrides)
        client: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
        return client

    return start


@pytest.fixture
async def client(make_client: AppFactory) -> TestClient[Any, Any]:
    return await make_client()


async def login(client: TestClient[Any, Any], email: str, password: str) -> dict[str, Any]:
    response = await client.post("/v1/auth/login", json={"email": email, "password": password})
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def admin(client: TestClient[Any, Any]) -> dict[str, Any]:
    """Tokens of the start-up admin."""
    return await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)


@pytest.fixture
async def admin_headers(admin: dict[str, Any]) -> dict[str, str]:
    return bearer(admin["access_token"])


async def create_user(
    client: TestClient[Any, Any],
    headers: dict[str, str],
    *,
    email: str,
    password: str = "client-password",
    role: str = "client",
    name: str | None = None,
    network_ids: list[int] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name or email.split("@")[0],
        "email": email,
        "password": password,
        "role": role,
    }
    if network_ids is not None:
        body["networkIds"] = network_ids
    response = await client.post("/v1/users", json=body, headers=headers)
    assert response.status == 201, await response.text()
    user: dict[str, Any] = await response.json()
    return user


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll until the predicate holds (bounded); for effects that cross the event loop."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    yield f"gw-test-{uuid.uuid4().hex[:8]}"
