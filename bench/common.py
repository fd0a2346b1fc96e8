"""Shared by the scenarios: the run context, starting servers and load generators, REST set-up.

Gateways run as ``python -m gateway serve`` configured only through GATEWAY_* variables, the way
an operator runs them; the baseline as ``python -m bench.baseline``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench import RESULTS_DIR
from bench.infra import PYTHON, Sampler, Server, child_setup
from tests.support.servers import free_port

ADMIN_EMAIL = "bench-admin@example.com"
ADMIN_PASSWORD = "bench-admin-password"
CLIENT_PASSWORD = "bench-client-password"

GATEWAY_LOAD_ENV = {
    # The benchmark measures throughput, not the per-session abuse limits: lift them.
    "GATEWAY_WS_RATE": "10000000",
    "GATEWAY_WS_BURST": "10000000",
    "GATEWAY_WS_QUEUE_MESSAGES": "1000000",
    "GATEWAY_WS_QUEUE_BYTES": str(512 << 20),
    "GATEWAY_LOG_LEVEL": "WARNING",
}


class BudgetExceeded(RuntimeError):
    """The run's time budget is spent; remaining scenarios are skipped, not started."""


@dataclass
class Context:
    """Everything a scenario needs; owns every process it starts."""

    quick: bool
    database_url: str
    redis_url: str
    run_dir: Path
    sampler: Sampler
    deadline: float
    redis_bus: bool
    results_dir: Path = RESULTS_DIR
    server_cpus: frozenset[int] | None = None
    client_cpus: frozenset[int] | None = None
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    redis_prefix: str = field(default_factory=lambda: f"gwbench-{uuid.uuid4().hex[:8]}")
    servers: list[Server] = field(default_factory=list)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def check_budget(self, needed: float) -> None:
        if self.remaining() < needed:
            raise BudgetExceeded(f"{self.remaining():.0f}s left, {needed:.0f}s needed")

    def gateway_env(self, port: int, name: str, redis: bool) -> dict[str, str]:
        env = {
            "GATEWAY_DATABASE_URL": self.database_url,
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(port),
            "GATEWAY_ADMIN_EMAIL": ADMIN_EMAIL,
            "GATEWAY_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "GATEWAY_JWT_SECRET": self.jwt_secret,
            "GATEWAY_DATA_DIR": str(self.run_dir / f"data-{name}"),
            "GATEWAY_INSTANCE_ID": name,
            "GATEWAY_REDIS_PREFIX": self.redis_prefix,
            **GATEWAY_LOAD_ENV,
        }
        if redis:
            env["GATEWAY_REDIS_URL"] = self.redis_url
        else:
            # An inherited GATEWAY_REDIS_URL must not turn a one-process run into a cluster.
            env["GATEWAY_REDIS_URL"] = ""
        return env

    async def start_gateway(
        self,
        name: str,
        *,
        redis: bool | None = None,
        probe: bool = False,
        pinned: bool = True,
        extra: Mapping[str, str] | None = None,
    ) -> Server:
        """``python -m gateway serve``, or with ``probe`` the same entry point through
        ``bench.probe`` (``extra`` carries its BENCH_* switches)."""
        port = free_port()
        module = "bench.probe" if probe else "gateway"
        env = {
            **self.gateway_env(port, name, self.redis_bus if redis is None else redis),
            **(extra or {}),
        }
        server = Server(
            name,
            [PYTHON, "-m", module, "serve"],
            port,
            env,
            self.run_dir / "logs",
            cpus=self.server_cpus if pinned else None,
        )
        return await self._start(server)

    async def start_baseline(
        self,
        name: str,
        *,
        store: bool = False,
        lean: bool = False,
        redis: bool = False,
        heartbeat: float | None = None,
    ) -> Server:
        """The bare relay; with ``store`` it also writes what it acknowledges to the run's
        database (the control for the cost of storage; the gateway must have migrated it), with
        ``lean`` it keeps no reference to a handled message, with ``redis`` it is one instance
        of a bare cluster on the run's Redis (bench/baseline.py)."""
        port = free_port()
        storing = ["--store", self.database_url] if store else []
        storing += ["--lean"] if lean else []
        storing += ["--redis", self.redis_url] if redis else []
        storing += ["--heartbeat", str(heartbeat)] if heartbeat is not None else []
        server = Server(
            name,
            [PYTHON, "-m", "bench.baseline", "--port", str(port), *storing],
            port,
            {},
            self.run_dir / "logs",
            cpus=self.server_cpus,
        )
        return await self._start(server)

    async def _start(self, server: Server, ready_timeout: float = 60.0) -> Server:
        self.servers.append(server)
        server.start()
        await server.wait_ready(ready_timeout)
        self.sampler.watch(server.name, server.pid)
        return server

    def stop(self, server: Server) -> int | None:
        self.sampler.forget(server.name)
        code = server.stop()
        with contextlib.suppress(ValueError):
            self.servers.remove(server)
        return code

    def stop_all(self) -> None:
        for server in list(self.servers):
            self.stop(server)


# -- load generator ------------------------------------------------------------------------


class LoadGen:
    """One ``python -m bench.loadgen`` process; its JSON-line events arrive on ``events``."""

    def __init__(self, ctx: Context, spec: dict[str, Any], name: str) -> None:
        self.ctx = ctx
        self.spec = spec
        self.name = name
        self.process: asyncio.subprocess.Process | None = None
        self.events: list[dict[str, Any]] = []

    async def __aenter__(self) -> LoadGen:
        path = self.ctx.run_dir / f"spec-{self.name}.json"
        path.write_bytes(orjson.dumps(self.spec))
        log = (self.ctx.run_dir / "logs" / f"loadgen-{self.name}.log").open("ab")
        try:
            self.process = await asyncio.create_subprocess_exec(
                PYTHON,
                "-m",
                "bench.loadgen",
                str(path),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                limit=1 << 24,
                preexec_fn=child_setup(self.ctx.client_cpus),
            )
        finally:
            log.close()
        self.ctx.sampler.watch(f"loadgen-{self.name}", self.process.pid)
        return self

    async def next_event(self, timeout: float) -> dict[str, Any]:
        """The next event line; EOF or a silent process past ``timeout`` is an error."""
        assert self.process is not None and self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"load generator {self.name} ended early (see its log)")
        event: dict[str, Any] = orjson.loads(line)
        self.events.append(event)
        if event.get("event") == "error":
            raise RuntimeError(f"load generator {self.name}: {event.get('error')}")
        return event

    async def until(
        self, kind: str, timeout: float, on_event: Callable[[dict[str, Any]], None] | None = None
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            event = await self.next_event(max(0.1, deadline - time.monotonic()))
            if on_event is not None:
                on_event(event)
            if event.get("event") == kind:
                return event

    def send(self, line: str) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")

    async def __aexit__(self, *exc: object) -> None:
        process = self.process
        if process is None:
            return
        self.ctx.sampler.forget(f"loadgen-{self.name}")
        if process.stdin is not None:
            with contextlib.suppress(OSError, RuntimeError):
                process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 20)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


# -- REST set-up ---------------------------------------------------------------------------


class Api:
    """The few REST calls the scenarios use to set a gateway up."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Api:
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.http is not None
        await self.http.close()

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        ok: tuple[int, ...] = (200, 201, 204),
    ) -> Any:
        assert self.http is not None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.request(
            method, self.base_url + path, json=body, headers=headers
        ) as response:
            data = await response.read()
            if response.status not in ok:
                raise RuntimeError(f"{method} {path}: {response.status} {data[:300]!r}")
            return orjson.loads(data) if data else None

    async def login(self, email: str, password: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(
            "POST", "/v1/auth/login", {"email": email, "password": password}
        )
        return result

    async def admin_token(self) -> str:
        return str((await self.login(ADMIN_EMAIL, ADMIN_PASSWORD))["access_token"])

    async def network(self, token: str, name: str) -> int:
        body = await self.call("POST", "/v1/networks", {"name": name}, token)
        return int(body["id"])

    async def client_user(self, token: str, email: str, network_ids: list[int]) -> int:
        body = await self.call(
            "POST",
            "/v1/users",
            {
                "name": email.split("@")[0],
                "email": email,
                "password": CLIENT_PASSWORD,
                "role": "client",
                "networkIds": network_ids,
            },
            token,
        )
        return int(body["id"])

    async def mint(self, token: str, user_id: int) -> str:
        body = await self.call("POST", "/v1/auth/token/create", {"user_id": user_id}, token)
        return str(body["access_token"])


@contextlib.asynccontextmanager
async def api(server: Server) -> AsyncIterator[Api]:
    async with Api(server.url) as client:
        yield client


def ratio(value: float | None, base: float | None) -> float | None:
    if value is None or not base:
        return None
    return value / base


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}
