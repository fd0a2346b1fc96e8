"""Connections held: authenticated idle sessions on one process, up to its open-file limit.

For the baseline and then the gateway: connect WebSockets in steps (bounded concurrency, the
listen backlog is aiohttp's default) up to what the open-file limit allows, each session
authenticated with its own token (own sid and jti, as real devices have), spread over several
loopback source addresses (127.0.0.2, 127.0.0.3, ...) so that the client's ephemeral ports never
bound the run. After each step the server's RSS is sampled once it settles (every session of the
step pinged once, see ``HEARTBEAT``): memory per session is (RSS while holding - RSS before) / N,
the slope is the least-squares fit of RSS over sessions, and the fit projects what 50,000 and
100,000 sessions would take.
"""

from __future__ import annotations

import asyncio
import itertools
import resource
import time
from typing import Any

import aiohttp

from bench.common import Context, LoadGen, api, ratio
from bench.infra import Server

TARGET_SESSIONS = 50_000
PROJECTIONS = (50_000, 100_000)
HEARTBEAT = 10.0
"""Both servers ping every 10 s here (30 s as shipped), and each step is read once every session
has been pinged: with aiohttp's heartbeat (the relay's; the gateway had it until it pinged from
its own ticker) a session's first ping leaves about 1.5-1.9 KiB more of it (the pong timer's
attribute, ``aiohttp/web_ws.py:219`` under tracemalloc), after which it stays flat. Read before
that, a step reflects how many of its sessions happened to have been pinged (the first ones
after 30 s), so the last step of the longest run looked the most expensive."""

PER_SOURCE = 10_000
"""Sessions per loopback source address (the ephemeral port range holds ~28,000)."""


def parameters(quick: bool) -> dict[str, Any]:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = max(1000, soft - 300)  # every session is one descriptor on each side
    sessions = 2000 if quick else 10_000
    top = 2000 if quick else min(TARGET_SESSIONS, ceiling)
    steps = [1000, 2000] if quick else [2500, 5000, 10_000, 15_000, top]
    heartbeat = 2.0 if quick else HEARTBEAT
    return {
        "sessions": sessions,
        "steps": sorted({min(n, top) for n in [*steps, sessions]}),
        "max_sessions": top,
        "per_source": PER_SOURCE,
        "concurrency": 100,
        "idle_seconds": 2.0 if quick else 5.0,
        "heartbeat_seconds": heartbeat,
        "settle_seconds": heartbeat + 2.0,
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
        "steps": params.get("steps") or [count],
        "per_source": params.get("per_source"),
        "concurrency": params["concurrency"],
        "sign": {"secret": ctx.jwt_secret},
        "user_id": user_id,
        "role": "client",
        "hold_timeout": 120,
        "deadline": 400,
    }


def _heartbeat(params: dict[str, Any]) -> dict[str, str]:
    return {"GATEWAY_WS_HEARTBEAT": str(params["heartbeat_seconds"])}


async def _user(server: Server) -> int:
    from bench.common import CLIENT_PASSWORD  # noqa: F401 - documents the account's password

    async with api(server) as client:
        admin = await client.admin_token()
        network = await client.network(admin, f"idle-{server.name}")
        return await client.client_user(admin, f"idle-{server.name}@example.com", [network])


def fit(points: list[tuple[int, float]]) -> tuple[float | None, float | None]:
    """Least squares ``rss = intercept + slope * sessions`` (KiB); None with < 2 points."""
    if len(points) < 2:
        return None, None
    n = len(points)
    mean_x = sum(p[0] for p in points) / n
    mean_y = sum(p[1] for p in points) / n
    var = sum((p[0] - mean_x) ** 2 for p in points)
    if not var:
        return None, None
    slope = sum((p[0] - mean_x) * (p[1] - mean_y) for p in points) / var
    return slope, mean_y - slope * mean_x


async def hold(
    ctx: Context, server: Server, params: dict[str, Any], user_id: int
) -> dict[str, Any]:
    """Hold sessions on ``server`` step by step; RSS (and at the compared step and the last,
    idle CPU) at each step."""
    await asyncio.sleep(params["settle_seconds"])
    before = ctx.sampler.now(server.name)
    assert before is not None
    steps: list[dict[str, Any]] = []
    spec = _hold_spec(ctx, server, params["max_sessions"], params, user_id)
    connect_seconds = 0.0
    async with LoadGen(ctx, spec, f"hold-{server.name}") as loadgen:
        while True:
            held = await loadgen.until("held", 300)
            connect_seconds += held["connect_seconds"]
            await asyncio.sleep(params["settle_seconds"])
            cpu = None
            if held["last"] or held["requested"] == params["sessions"]:
                start = time.monotonic()
                await asyncio.sleep(params["idle_seconds"])
                cpu = ctx.sampler.cpu_percent(server.name, start, time.monotonic())
            during = ctx.sampler.now(server.name)
            assert during is not None
            sessions = held["held"]
            steps.append(
                {
                    "requested": held["requested"],
                    "held": sessions,
                    "failed": held["failed"],
                    "error_samples": held["error_samples"],
                    "sources": held["sources"],
                    "connect_seconds": connect_seconds,
                    "connect_per_s": sessions / connect_seconds if connect_seconds else None,
                    "rss_before_mib": before.rss / 2**20,
                    "rss_held_mib": during.rss / 2**20,
                    "rss_per_session_kib": (during.rss - before.rss) / sessions / 1024
                    if sessions
                    else None,
                    "idle_cpu_percent": cpu,
                }
            )
            if held["last"]:
                loadgen.send("release")
                break
            loadgen.send("next")
        done = await loadgen.until("done", 60)
    for step in steps:
        step["dropped_while_held"] = done["dropped_while_held"]
        step["close_codes_while_held"] = done["close_codes_while_held"]
    points = [(s["held"], s["rss_held_mib"] * 1024) for s in steps if s["held"]]
    slope, intercept = fit(points)
    increments = [
        (b[1] - a[1]) / (b[0] - a[0]) for a, b in itertools.pairwise(points) if b[0] > a[0]
    ]
    return {
        "steps": steps,
        "slope_kib_per_session": slope,
        "intercept_mib": None if intercept is None else intercept / 1024,
        "step_kib_per_session": increments,
        "projected_mib": {
            str(n): None if slope is None or intercept is None else (intercept + slope * n) / 1024
            for n in PROJECTIONS
        },
    }


def _at(result: dict[str, Any], sessions: int) -> dict[str, Any]:
    """The step that held ``sessions`` (else the nearest below it)."""
    steps = result["steps"]
    below = [s for s in steps if s["requested"] <= sessions] or steps[:1]
    return dict(below[-1])


async def run(ctx: Context) -> dict[str, Any]:
    params = parameters(ctx.quick)
    results: dict[str, Any] = {}
    held: dict[str, Any] = {}
    for target in ("baseline", "gateway"):
        ctx.check_budget(60)
        if target == "baseline":
            server = await ctx.start_baseline(
                "baseline-idle", heartbeat=params["heartbeat_seconds"]
            )
            user_id = 1
        else:
            server = await ctx.start_gateway("gateway-idle", extra=_heartbeat(params))
            user_id = await _user(server)
        try:
            held[target] = await hold(ctx, server, params, user_id)
        finally:
            ctx.stop(server)
        results[target] = _at(held[target], params["sessions"])
        results[f"{target}_max"] = dict(held[target]["steps"][-1])
    lean = None
    if not ctx.quick and ctx.remaining() > 120:
        # The what-if: the same relay, its read loop keeping no reference to a handled message.
        server = await ctx.start_baseline(
            "baseline-lean-idle", lean=True, heartbeat=params["heartbeat_seconds"]
        )
        n = params["sessions"]
        try:
            lean = _at(
                await hold(ctx, server, {**params, "steps": [n], "max_sessions": n}, 1),
                params["sessions"],
            )
        finally:
            ctx.stop(server)
        results["baseline_lean"] = lean
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
        "lean_baseline_kib_per_session": None if lean is None else lean["rss_per_session_kib"],
        "memory_ratio_vs_lean": None
        if lean is None
        else ratio(gate["rss_per_session_kib"], lean["rss_per_session_kib"]),
        "baseline_connect_per_s": base["connect_per_s"],
        "gateway_connect_per_s": gate["connect_per_s"],
        "connect_ratio": ratio(gate["connect_per_s"], base["connect_per_s"]),
        "baseline_idle_cpu_percent": base["idle_cpu_percent"],
        "gateway_idle_cpu_percent": gate["idle_cpu_percent"],
        "max_held": results["gateway_max"]["held"],
        "max_requested": params["max_sessions"],
        "target_sessions": TARGET_SESSIONS,
        "slope_kib_per_session": {t: held[t]["slope_kib_per_session"] for t in held},
        "slope_ratio": ratio(
            held["gateway"]["slope_kib_per_session"], held["baseline"]["slope_kib_per_session"]
        ),
        "step_kib_per_session": {t: held[t]["step_kib_per_session"] for t in held},
        "flat_ratio": ratio(
            results["gateway_max"]["rss_per_session_kib"], gate["rss_per_session_kib"]
        ),
        "projected_mib": {t: held[t]["projected_mib"] for t in held},
    }
    return {
        "parameters": params,
        "runs": results,
        "held": held,
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
        "gateway-idle-tracemalloc",
        probe=True,
        extra={"BENCH_TRACEMALLOC": "1", **_heartbeat(params)},
    )
    try:
        user_id = await _user(server)
        spec = _hold_spec(ctx, server, count, {**params, "steps": None}, user_id)
        await _memory(server, snapshot=True)
        async with LoadGen(ctx, spec, "hold-tracemalloc") as loadgen:
            held = await loadgen.until("held", 120)
            await asyncio.sleep(params["settle_seconds"])
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
