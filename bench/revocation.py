"""Revocation latency across instances, with 10k live sessions.

Two gateway processes share PostgreSQL and Redis (the cluster bus). The load generator holds
the sessions spread over both, then:

- one by one, logs out a session held on one instance by calling ``POST /v1/auth/logout`` with
  its token on the *other* instance, and times the request until the close frame (4003) reaches
  the client;
- calls ``POST /v1/auth/logout/all`` for a user with many sessions on both instances and times
  the request until each of them is closed.

The sessions logged out one by one carry real tokens from ``/v1/auth/token/create``; the others
are signed with the instances' secret by the gateway's own codec (same claims, own sid and jti
each), which saves ten thousand database round trips in the set-up. Both instances are pinned
to the server CPU: this measures the protocol, not a core per instance. They run through
``bench.probe``, which times their loop lag and GC pauses during the run (what makes the tail)
and lets a second, smaller pass profile the logout paths with pyinstrument (off during the
measured pass). The first few logouts (connections to PostgreSQL and Redis warming up) are
reported apart.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import asyncpg
from prometheus_client.parser import text_string_to_metric_families

from bench.common import Context, LoadGen, api
from bench.infra import Server, backend_pids, renice
from bench.loadgen import percentiles

COMMITS = 200
"""Commits timed on the run's PostgreSQL, one at a time, after the logouts (see ``_commits``)."""

TARGET_P99_MS = 10.0


def parameters(quick: bool) -> dict[str, Any]:
    return {
        "sessions": 2000 if quick else 10_000,
        "samples": 40 if quick else 400,
        "warmup": 5,
        "groups": [200] if quick else [1000, 1000],
        "concurrency": 100,
        "gap_seconds": 0.005,
        "profile": not quick,
        "profile_sessions": 1000,
        "profile_samples": 60,
        "profile_group": 300,
    }


async def run(ctx: Context) -> dict[str, Any]:
    params = parameters(ctx.quick)
    hooks = {
        "BENCH_PROFILE_CALLS": "auth.logout,auth.revoke_user",
        "BENCH_LAG": "1",
        "BENCH_GC_STATS": "1",
    }
    first = await ctx.start_gateway("gateway-rev-a", redis=True, probe=True, extra=hooks)
    second = await ctx.start_gateway("gateway-rev-b", redis=True, probe=True, extra=hooks)
    try:
        async with api(first) as client:
            admin = await client.admin_token()
            network = await client.network(admin, "revocation")
            filler = await client.client_user(admin, "rev-filler@example.com", [network])
            sampled = await client.client_user(admin, "rev-sampled@example.com", [network])
            groups = [
                {
                    "user_id": await client.client_user(
                        admin, f"rev-group{index}@example.com", [network]
                    ),
                    "count": count,
                }
                for index, count in enumerate(params["groups"])
            ]
            samples = [await client.mint(admin, sampled) for _ in range(params["samples"])]
        spec = _spec(first, second, ctx, filler, samples, groups, params["sessions"], params)
        async with LoadGen(ctx, spec, "revoke") as loadgen:
            held = await loadgen.until("held", 240)
            await _renice_postgres(ctx)
            for server in (first, second):
                await _probe(server, "lag?reset=1")
            started = time.monotonic()
            await loadgen.until("singles_done", 240)
            ended = time.monotonic()
            stalls = {
                server.name: await _probe(server, "lag?reset=1") for server in (first, second)
            }
            counted = [await _closes_counted(server) for server in (first, second)]
            commits = await _commits(ctx.database_url, COMMITS)
            loadgen.send("go")
            done = await loadgen.until("done", 240)
            stalls_all = {
                server.name: await _probe(server, "lag?reset=1") for server in (first, second)
            }
        cpu = {
            server.name: ctx.sampler.cpu_percent(server.name, started, ended)
            for server in (first, second)
        }
        profiles: dict[str, Any] = {}
        if params["profile"] and ctx.remaining() > 60:
            profiles = await _profile(ctx, first, second, filler, sampled, network, params)
    finally:
        ctx.stop(first)
        ctx.stop(second)
    single = done["single"]
    p99 = single["close_ms"]["p99"]
    return {
        "parameters": params,
        "held": held,
        "results": done,
        "server_cpu_percent": cpu,
        "loop_lag_and_gc": {"one_by_one": stalls, "logout_all": stalls_all},
        "profiles": profiles,
        "summary": {
            "sessions": done["sessions"],
            "per_instance": done["per_instance"],
            "single_close_ms": single["close_ms"],
            "single_http_ms": single["http_ms"],
            "logout_all": [
                {
                    "sessions": g["sessions"],
                    "closed": g["closed"],
                    "close_ms": g["close_ms"],
                    "http_ms": g["http_ms"],
                }
                for g in done["logout_all"]
            ],
            "warmup_close_ms": single["warmup_close_ms"],
            "stalls": {
                name: {
                    "lag_p99_ms": item["timer"].get("p99_ms"),
                    "lag_max_ms": item["timer"].get("max_ms"),
                    "gen2": item["gc"]["gen2"],
                    "gen1": item["gc"]["gen1"],
                    "gen0": item["gc"]["gen0"],
                }
                for name, item in stalls.items()
            },
            "host_steal_percent": ctx.sampler.steal_percent(started, ended),
            "postgres_commit_ms": commits,
            "loadgen_gc": done["loadgen_gc"],
            "gateway_counted": {
                "within_ms": TARGET_P99_MS,
                "within": sum(within for within, _ in counted),
                "closes": sum(closes for _, closes in counted),
            },
            "fillers_still_open": done["fillers_still_open"],
            "fillers": done["fillers"],
            "target_p99_ms": TARGET_P99_MS,
            "met": p99 is not None and p99 <= TARGET_P99_MS,
        },
    }


def _spec(
    first: Server,
    second: Server,
    ctx: Context,
    filler: int,
    samples: list[str],
    groups: list[dict[str, int]],
    total: int,
    params: dict[str, Any],
) -> dict[str, Any]:
    return {
        "mode": "revoke",
        "instances": [
            {"host": "127.0.0.1", "port": first.port},
            {"host": "127.0.0.1", "port": second.port},
        ],
        "sign": {"secret": ctx.jwt_secret},
        "filler_user_id": filler,
        "samples": samples,
        "groups": groups,
        "total": total,
        "concurrency": params["concurrency"],
        "gap": params["gap_seconds"],
        "warmup": params["warmup"],
        "stepped": True,
        "deadline": 300,
    }


async def _renice_postgres(ctx: Context) -> None:
    """The PostgreSQL backends serving our database get the benchmark's priority."""
    for pid in await backend_pids(ctx.database_url):
        renice(pid)


async def _commits(database_url: str, count: int) -> dict[str, Any]:
    """How long one small commit takes on the run's PostgreSQL, alone: a revocation is
    recorded (committed) before it is sent to the instances, so the disk's flush latency is
    part of every close, and its tail part of the close's tail."""
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        # A logged table (a temporary one writes no WAL, and its commit flushes nothing).
        await conn.execute("CREATE TABLE IF NOT EXISTS bench_commit_probe (at double precision)")
        timings: list[float] = []
        for _ in range(count):
            started = time.perf_counter()
            await conn.execute("INSERT INTO bench_commit_probe VALUES ($1)", time.time())
            timings.append(time.perf_counter() - started)
            await asyncio.sleep(0.005)
        await conn.execute("DROP TABLE bench_commit_probe")
    finally:
        await conn.close()
    return percentiles(timings, 1000.0)


async def _closes_counted(server: Server) -> tuple[int, int]:
    """The instance's own account from its ``gateway_revocation_close_seconds`` histogram:
    (closes within the target, all closes), from the revocation being recorded to the 4003 frame
    written. It leaves out the client's side (the HTTP request on its way, the close frame read
    by the load generator), so a tail here is the gateways' and one only in the requests'
    timings is not. The warm-up logouts are in it."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http,
        http.get(f"{server.url}/metrics") as response,
    ):
        text = await response.text()
    within = closes = 0
    for family in text_string_to_metric_families(text):
        if family.name != "gateway_revocation_close_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_count"):
                closes = int(sample.value)
            elif (
                sample.name.endswith("_bucket")
                and float(sample.labels["le"]) == TARGET_P99_MS / 1000
            ):
                within = int(sample.value)
    return within, closes


async def _probe(server: Server, path: str) -> dict[str, Any]:
    """A GET on the probe wrapper's ``/_bench/...`` routes."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http,
        http.get(f"{server.url}/_bench/{path}") as response,
    ):
        result: dict[str, Any] = await response.json()
        return result


async def _profile_call(server: Server, start: bool) -> dict[str, Any]:
    return await _probe(server, "profile?start=1" if start else "profile")


async def _profile(
    ctx: Context,
    first: Server,
    second: Server,
    filler: int,
    sampled: int,
    network: int,
    params: dict[str, Any],
) -> dict[str, Any]:
    """A second, smaller pass with the logout paths under pyinstrument (async mode: wall-clock
    time including awaits on PostgreSQL and Redis) on both instances."""
    async with api(first) as client:
        admin = await client.admin_token()
        samples = [await client.mint(admin, sampled) for _ in range(params["profile_samples"])]
        group = await client.client_user(admin, "rev-profile-group@example.com", [network])
    spec = _spec(
        first,
        second,
        ctx,
        filler,
        samples,
        [{"user_id": group, "count": params["profile_group"]}],
        params["profile_sessions"],
        params,
    )
    for server in (first, second):
        await _profile_call(server, start=True)
    async with LoadGen(ctx, spec, "revoke-profile") as loadgen:
        await loadgen.until("held", 120)
        await _renice_postgres(ctx)
        await loadgen.until("singles_done", 120)
        loadgen.send("go")
        done = await loadgen.until("done", 120)
    out: dict[str, Any] = {"single_close_ms": done["single"]["close_ms"]}
    for server in (first, second):
        report = await _profile_call(server, start=False)
        path = ctx.results_dir / "profiles" / f"pyinstrument-{server.name}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(report.get("text", ""))
        out[server.name] = {
            "calls": report.get("calls"),
            "seconds": report.get("seconds"),
            "file": path.name,
            "excerpt": excerpt(report.get("text", "")),
        }
    return out


def excerpt(text: str, limit: int = 32) -> list[str]:
    """The part of a pyinstrument tree under the profiled ``AuthService`` call."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if "AuthService." in line:
            indent = len(line) - len(line.lstrip(" |`-"))
            block = [line[indent:]]
            for following in lines[index + 1 :]:
                if len(following) - len(following.lstrip(" |`-")) <= indent:
                    break
                block.append(following[indent:])
            return block[:limit]
    return []
