"""Logins per second with argon2id at the configured cost, and the event loop's lag meanwhile.

One gateway (through ``bench.probe``: the same entry point plus a lag probe and GC timing) with
the default argon2id parameters and hash workers. Three windows: idle; live traffic alone (1:1
fan-out at a fixed rate); live traffic while concurrent clients log in as fast as the server
answers. The gateway is not pinned here: argon2 runs on worker threads that may use every core,
which is how it is deployed. The event-loop thread's run-queue wait (``/proc/*/schedstat``)
tells a starved loop from a busy one.

The baseline of a login is the hash itself: ``python -m bench.login`` verifies argon2id
passwords with the same parameters on as many threads as the gateway has hash workers, with
nothing else around, and logins/s is also reported as a ratio to that ceiling.

In a full run a second gateway repeats the last window as a what-if: the same cost, but the
hashing threads a few nice levels below the event loop (``BENCH_HASHER_NICE``), to show whether
scheduling priority alone would close the gap.
"""

from __future__ import annotations

import asyncio
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
import orjson

from bench.common import CLIENT_PASSWORD, Context, LoadGen, api
from bench.config_defaults import argon2_defaults
from bench.infra import PYTHON, Server, child_setup, schedstat_delta, thread_schedstat

TARGET_LAG_P99_MS = 5.0


def parameters(quick: bool) -> dict[str, Any]:
    return {
        "concurrency": 8,
        "login_seconds": 4.0 if quick else 10.0,
        "idle_seconds": 1.0 if quick else 2.0,
        "traffic_rate": 2000,
        "traffic_devices": 20,
        "traffic_alone_seconds": 2.0 if quick else 4.0,
        "argon2": argon2_defaults(),
        # The gateway now runs its hashing threads 10 nice levels down itself (passwords.py),
        # so the former what-if (the same, injected by the probe) has nothing left to show.
        "what_if_hasher_nice": None,
        "ceiling_seconds": 2.0 if quick else 4.0,
    }


async def _lag(server: Server) -> dict[str, Any]:
    """The probe's figures since the last call; starts a new window."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
        http.get(f"{server.url}/_bench/lag?reset=1") as response,
    ):
        result: dict[str, Any] = await response.json()
        return result


def _traffic_spec(
    server: Server, params: dict[str, Any], fixture: dict[str, Any], seconds: float, label: str
) -> dict[str, Any]:
    return {
        "mode": "fanout",
        "host": "127.0.0.1",
        "port": server.port,
        "token": fixture["token"],
        "devices": [f"login-{label}-d{i}" for i in range(params["traffic_devices"])],
        "topology": "1:1",
        "subscribers": params["traffic_devices"],
        "network_id": fixture["network"],
        "phases": [
            {
                "label": label,
                "mode": "rate",
                "rate": params["traffic_rate"],
                "duration": seconds,
                "warmup": 0.5,
            }
        ],
        "pause": 0.0,
        "deadline": 120,
    }


async def _fixture(server: Server) -> dict[str, Any]:
    async with api(server) as client:
        admin = await client.admin_token()
        network = await client.network(admin, f"login-{server.name}")
        email = f"login-{server.name}@example.com"
        await client.client_user(admin, email, [network])
        token = (await client.login(email, CLIENT_PASSWORD))["access_token"]
    return {"network": network, "token": token, "email": email}


async def _with_logins(
    ctx: Context, server: Server, params: dict[str, Any], fixture: dict[str, Any], label: str
) -> dict[str, Any]:
    """Live traffic and logins at once: logins/s, loop lag, the loop thread's CPU wait."""
    seconds = params["login_seconds"]
    spec = _traffic_spec(server, params, fixture, seconds + 1.0, label)
    login_spec = {
        "mode": "login",
        "host": "127.0.0.1",
        "port": server.port,
        "email": fixture["email"],
        "password": CLIENT_PASSWORD,
        "concurrency": params["concurrency"],
        "duration": seconds,
        "deadline": 120,
    }
    async with LoadGen(ctx, spec, f"login-traffic-{label}") as traffic:
        await traffic.until("ready", 60)
        await asyncio.sleep(0.5)
        async with LoadGen(ctx, login_spec, f"login-{label}") as logins:
            await _lag(server)
            threads_before, at_before = thread_schedstat(server.pid), time.monotonic()
            login_done = await logins.until("done", seconds + 60)
            threads_after, at_after = thread_schedstat(server.pid), time.monotonic()
            lag = await _lag(server)
        traffic_done = await traffic.until("done", 120)
    start, end = login_done["window"]
    return {
        "logins": login_done,
        "lag": lag,
        "fanout": traffic_done["phases"][0],
        "threads": schedstat_delta(server.pid, threads_before, threads_after, at_after - at_before),
        "server_cpu_percent": ctx.sampler.cpu_percent(server.name, start, end),
        "machine_cpu_percent": ctx.sampler.cpu_percent(ctx.sampler.MACHINE, start, end),
    }


async def _what_if(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    step = params["what_if_hasher_nice"]
    server = await ctx.start_gateway(
        "gateway-login-whatif",
        probe=True,
        pinned=False,
        extra={"BENCH_LAG": "1", "BENCH_HASHER_NICE": str(step)},
    )
    try:
        fixture = await _fixture(server)
        return await _with_logins(ctx, server, params, fixture, "whatif")
    finally:
        ctx.stop(server)


def _brief(window: dict[str, Any]) -> dict[str, Any]:
    return {
        "logins_per_s": window["logins"]["logins_per_s"],
        "login_latency_ms": window["logins"]["latency_ms"],
        "lag_p99_ms": window["lag"]["timer"].get("p99_ms"),
        "lag_max_ms": window["lag"]["timer"].get("max_ms"),
        "turn_p99_ms": window["lag"]["turn"].get("p99_ms"),
        "traffic_p99_ms": window["fanout"]["latency_ms"]["p99"],
        "loop_thread_runqueue_wait_percent": window["threads"]["loop_thread_runqueue_wait_percent"],
        "loop_thread_cpu_percent": window["threads"]["loop_thread_cpu_percent"],
        "server_cpu_percent": window["server_cpu_percent"],
        "machine_cpu_percent": window["machine_cpu_percent"],
    }


def hash_ceiling(seconds: float) -> dict[str, Any]:
    """argon2id verifications per second with the gateway's parameters and worker count."""
    from argon2 import PasswordHasher, Type

    cost = argon2_defaults()
    hasher = PasswordHasher(
        time_cost=cost["time_cost"],
        memory_cost=cost["memory_kib"],
        parallelism=cost["parallelism"],
        type=Type.ID,
    )
    encoded = hasher.hash(CLIENT_PASSWORD)
    deadline = time.monotonic() + seconds

    def worker() -> int:
        done = 0
        while time.monotonic() < deadline:
            hasher.verify(encoded, CLIENT_PASSWORD)
            done += 1
        return done

    started = time.monotonic()
    with ThreadPoolExecutor(cost["hash_workers"]) as pool:
        counts = list(pool.map(lambda _: worker(), range(cost["hash_workers"])))
    elapsed = time.monotonic() - started
    return {"verifications": sum(counts), "seconds": elapsed, "per_s": sum(counts) / elapsed}


async def _ceiling(seconds: float) -> dict[str, Any]:
    """``hash_ceiling`` in a process of its own, unpinned like the gateway in this scenario."""
    process = await asyncio.create_subprocess_exec(
        PYTHON,
        "-m",
        "bench.login",
        str(seconds),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=child_setup(None),
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), seconds + 60)
    if process.returncode != 0:
        raise RuntimeError(f"argon2 ceiling failed: {stderr.decode(errors='replace')[-300:]}")
    result: dict[str, Any] = orjson.loads(stdout)
    return result


async def run(ctx: Context) -> dict[str, Any]:
    params = parameters(ctx.quick)
    ceiling = await _ceiling(params["ceiling_seconds"])
    server = await ctx.start_gateway(
        "gateway-login",
        probe=True,
        pinned=False,
        extra={"BENCH_LAG": "1", "BENCH_GC_STATS": "1"},
    )
    try:
        fixture = await _fixture(server)
        await _lag(server)
        await asyncio.sleep(params["idle_seconds"])
        idle = await _lag(server)

        spec = _traffic_spec(server, params, fixture, params["traffic_alone_seconds"], "alone")
        async with LoadGen(ctx, spec, "login-traffic-alone") as traffic:
            await traffic.until("ready", 60)
            await _lag(server)
            alone_done = await traffic.until("done", 120)
            alone_lag = await _lag(server)
        busy = await _with_logins(ctx, server, params, fixture, "with-logins")
    finally:
        ctx.stop(server)
    what_if = None
    if params["what_if_hasher_nice"] and ctx.remaining() > 60:
        what_if = _brief(await _what_if(ctx, params))
    brief = _brief(busy)
    p99 = brief["lag_p99_ms"]
    return {
        "parameters": params,
        "idle_lag": idle,
        "traffic_alone": {"lag": alone_lag, "fanout": alone_done["phases"][0]},
        "with_logins": busy,
        "what_if_hashers_niced": what_if,
        "hash_ceiling": ceiling,
        "summary": {
            **brief,
            "hash_ceiling_per_s": ceiling["per_s"],
            "logins_ratio": brief["logins_per_s"] / ceiling["per_s"] if ceiling["per_s"] else None,
            "lag_p99_ms_idle": idle["timer"].get("p99_ms"),
            "turn_p99_ms_idle": idle["turn"].get("p99_ms"),
            "lag_p99_ms_traffic": alone_lag["timer"].get("p99_ms"),
            "turn_p99_ms_traffic": alone_lag["turn"].get("p99_ms"),
            "traffic_p99_ms_alone": alone_done["phases"][0]["latency_ms"]["p99"],
            "gc_with_logins": busy["lag"].get("gc"),
            "what_if": what_if,
            "target_lag_p99_ms": TARGET_LAG_P99_MS,
            "met": p99 is not None and p99 <= TARGET_LAG_P99_MS,
        },
    }


if __name__ == "__main__":
    sys.stdout.write(orjson.dumps(hash_ceiling(float(sys.argv[1]))).decode() + "\n")
