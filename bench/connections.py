"""Connections held: N authenticated idle sessions on one process.

For the baseline and then the gateway: connect N WebSockets (bounded concurrency, the listen
backlog is aiohttp's default), authenticate each with its own token (own sid and jti, as real
devices have), hold them idle, then measure the server's RSS and CPU. Memory per session is
(RSS while holding - RSS before) / N. Then, for the gateway only, as many sessions as the
open-file limit of this machine allows (the target is 50k; a hard limit below that is reported).
"""

from __future__ import annotations

import asyncio
import resource
import time
from typing import Any

import aiohttp

from bench.common import Context, LoadGen, api, ratio
from bench.infra import Server

TARGET_SESSIONS = 50_000


def parameters(quick: bool) -> dict[str, Any]:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = max(1000, soft - 300)  # every session is one descriptor on each side
    return {
        "sessions": 2000 if quick else 10_000,
        "concurrency": 100,
        "idle_seconds": 2.0 if quick else 5.0,
        "settle_seconds": 1.0 if quick else 2.0,
        "max_sessions": None if quick else min(TARGET_SESSIONS, ceiling),
        "breakdown_sessions": None if quick else 2000,
        "nofile_soft_limit": soft,
    }


def _hold_spec(
    ctx: Context, server: Server, count: int, params: dict[str, Any], user_id: int
) -> dict[str, Any]:
    """The load generator's orders: open ``count`` authenticated sessions and hold them."""
    return {
        "mode": "hold",
        "host": "127.0.0.1",
        "port": server.port,
        "count": count,
        "concurrency": params["concurrency"],
        "sign": {"secret": ctx.jwt_secret},
        "user_id": user_id,
        "role": "client",
        "hold_timeout": 120,
        "deadline": 240,
    }


async def _user(server: Server) -> int:
    from bench.common import CLIENT_PASSWORD  # noqa: F401 - documents the account's password

    async with api(server) as client:
        admin = await client.admin_token()
        network = await client.network(admin, f"idle-{server.name}")
        return await client.client_user(admin, f"idle-{server.name}@example.com", [network])


async def hold(
    ctx: Context, server: Server, count: int, params: dict[str, Any], user_id: int
) -> dict[str, Any]:
    """Hold ``count`` sessions on ``server``; RSS and CPU before and while holding."""
    await asyncio.sleep(params["settle_seconds"])
    before = ctx.sampler.now(server.name)
    assert before is not None
    spec = _hold_spec(ctx, server, count, params, user_id)
    async with LoadGen(ctx, spec, f"hold-{server.name}-{count}") as loadgen:
        held = await loadgen.until("held", 180)
        await asyncio.sleep(params["settle_seconds"])
        start = time.monotonic()
        await asyncio.sleep(params["idle_seconds"])
        end = time.monotonic()
        during = ctx.sampler.now(server.name)
        assert during is not None
        cpu = ctx.sampler.cpu_percent(server.name, start, end)
        loadgen.send("release")
        done = await loadgen.until("done", 60)
    sessions = held["held"]
    grown = during.rss - before.rss
    return {
        "requested": count,
        "held": sessions,
        "failed": held["failed"],
        "error_samples": held["error_samples"],
        "connect_seconds": held["connect_seconds"],
        "connect_per_s": held["connect_per_s"],
        "rss_before_mib": before.rss / 2**20,
        "rss_held_mib": during.rss / 2**20,
        "rss_per_session_kib": grown / sessions / 1024 if sessions else None,
        "idle_cpu_percent": cpu,
        "dropped_while_held": done["dropped_while_held"],
        "close_codes_while_held": done["close_codes_while_held"],
    }


async def run(ctx: Context) -> dict[str, Any]:
    params = parameters(ctx.quick)
    results: dict[str, Any] = {}
    for target in ("baseline", "gateway"):
        ctx.check_budget(40)
        if target == "baseline":
            server = await ctx.start_baseline("baseline-idle")
            user_id = 1
        else:
            server = await ctx.start_gateway("gateway-idle")
            user_id = await _user(server)
        try:
            results[target] = await hold(ctx, server, params["sessions"], params, user_id)
        finally:
            ctx.stop(server)
    if params["max_sessions"] and ctx.remaining() > 120:
        server = await ctx.start_gateway("gateway-idle-max")
        try:
            user_id = await _user(server)
            results["gateway_max"] = await hold(
                ctx, server, params["max_sessions"], params, user_id
            )
        finally:
            ctx.stop(server)
    breakdown = None
    if params["breakdown_sessions"] and ctx.remaining() > 60:
        breakdown = await _breakdown(ctx, params)
    base, gate = results["baseline"], results["gateway"]
    summary = {
        "sessions": params["sessions"],
        "baseline_kib_per_session": base["rss_per_session_kib"],
        "gateway_kib_per_session": gate["rss_per_session_kib"],
        "memory_ratio": ratio(gate["rss_per_session_kib"], base["rss_per_session_kib"]),
        "memory_target_ratio": 1.05,
        "baseline_connect_per_s": base["connect_per_s"],
        "gateway_connect_per_s": gate["connect_per_s"],
        "connect_ratio": ratio(gate["connect_per_s"], base["connect_per_s"]),
        "baseline_idle_cpu_percent": base["idle_cpu_percent"],
        "gateway_idle_cpu_percent": gate["idle_cpu_percent"],
        "max_held": results.get("gateway_max", {}).get("held"),
        "max_requested": params["max_sessions"],
        "target_sessions": TARGET_SESSIONS,
    }
    return {
        "parameters": params,
        "runs": results,
        "memory_breakdown": breakdown,
        "summary": summary,
    }


async def _memory(server: Server, snapshot: bool) -> dict[str, Any]:
    query = "?snapshot=1" if snapshot else ""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http,
        http.get(f"{server.url}/_bench/memory{query}") as response,
    ):
        result: dict[str, Any] = await response.json()
        return result


async def _breakdown(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Unmeasured pass under tracemalloc: what one idle session allocates, by source line."""
    count = params["breakdown_sessions"]
    server = await ctx.start_gateway(
        "gateway-idle-tracemalloc", probe=True, extra={"BENCH_TRACEMALLOC": "1"}
    )
    try:
        user_id = await _user(server)
        spec = _hold_spec(ctx, server, count, params, user_id)
        await _memory(server, snapshot=True)
        async with LoadGen(ctx, spec, "hold-tracemalloc") as loadgen:
            held = await loadgen.until("held", 120)
            await asyncio.sleep(1.0)
            report = await _memory(server, snapshot=False)
            loadgen.send("release")
            await loadgen.until("done", 60)
    finally:
        ctx.stop(server)
    sessions = held["held"] or 1
    return {
        "sessions": held["held"],
        "traced_bytes_per_session": report["total_bytes"] / sessions,
        "by_package_bytes_per_session": [
            (name, size / sessions) for name, size in report["by_package"]
        ],
        "top_lines_bytes_per_session": [
            {**line, "per_session": line["bytes"] / sessions} for line in report["top_lines"]
        ],
    }
