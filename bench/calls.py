"""Python calls per message: the gateway against the bare relay, counted, not timed.

CPU shares at 10k msg/s move by 5-10% between runs of the same code on a shared VM, more than
most single changes to the hot path save. Call counts do not: each server runs under cProfile
(``python -m cProfile``) through the same 1:1 x10 load at a moderate rate, twice, for two
lengths of the measured phase; the difference between the two runs, divided by the difference
in messages, is what one more message costs in calls, start-up and warm-up cancelled out.

A call is not a fixed cost (a dict look-up against a coroutine), so this explains the CPU
figures rather than replacing them: it names what the gateway does per message that a relay
does not, and shows whether a change removed it.
"""

from __future__ import annotations

import pstats
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import fanout
from bench.common import Context, LoadGen
from bench.infra import PYTHON, Server
from tests.support.servers import free_port

RATE = 1000
"""Messages per second: every message its own loop step, as at 10k msg/s on the bench's CPU
(this rate keeps a server under cProfile well below its core)."""

SECONDS = (4.0, 8.0)
"""The two lengths of the measured phase."""

TOP = 25


def _calls(path: Path) -> dict[str, int]:
    """Calls per function (``name (module:line)``) in a cProfile output file."""
    stats: dict[Any, Any] = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    out: dict[str, int] = {}
    for (file, line, name), (_, calls, *_rest) in stats.items():
        for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
            if marker in file:
                file = file.split(marker, 1)[1]
        out[f"{name} ({file}:{line})" if file != "~" else name] = calls
    return out


def server_command(
    ctx: Context, target: str, port: int, name: str, wrapper: list[str]
) -> tuple[list[str], dict[str, str]]:
    """The argv and environment of ``target`` (gateway or baseline) run under ``wrapper``, a
    command that ends where the Python module to run is named (``python -m cProfile ... -m``)."""
    if target == "gateway":
        return [*wrapper, "gateway", "serve"], ctx.gateway_env(port, name, redis=False)
    return [*wrapper, "bench.baseline", "--port", str(port)], {}


async def measured_phase(
    ctx: Context,
    server: Server,
    target: str,
    tag: str,
    *,
    rate: int,
    seconds: float,
    around: tuple[Callable[[], None], Callable[[], None]] | None = None,
) -> dict[str, Any]:
    """The 1:1 x10 load at ``rate`` through a 2 s warm-up and a measured phase of ``seconds``;
    ``around`` is called just before the measured phase starts and just after it ends. Returns
    the load generator's account of that phase (raises when it lost messages)."""
    params = fanout.parameters(ctx.quick)
    fixture = await fanout._gateway_fixture(server, tag) if target == "gateway" else None
    phases = [
        {"label": "warm", "mode": "rate", "rate": rate, "duration": 2.0, "warmup": 0.0},
        {"label": "measured", "mode": "rate", "rate": rate, "duration": seconds, "warmup": 0.0},
    ]
    spec = fanout._spec(server, target, "1:1 x10", params, fixture, phases, tag)
    async with LoadGen(ctx, spec, f"lg-{server.name}") as loadgen:
        await loadgen.until("ready", 120)
        loadgen.send("go")
        await loadgen.until("phase", 120)
        if around is not None:
            around[0]()
        loadgen.send("go")
        phase = await loadgen.until("phase", 120)
        if around is not None:
            around[1]()
        await loadgen.until("done", 120)
    if phase.get("lost"):
        raise RuntimeError(f"{server.name}: {phase['lost']} messages lost")
    return phase


async def _one(ctx: Context, target: str, seconds: float, tag: str) -> tuple[dict[str, int], int]:
    """One server under cProfile through a warm-up and a measured phase: its calls, and the
    messages of the measured phase."""
    port = free_port()
    name = f"calls-{target}-{seconds:.0f}"
    out = ctx.run_dir / f"{name}.pstats"
    argv, env = server_command(
        ctx, target, port, name, [PYTHON, "-m", "cProfile", "-o", str(out), "-m"]
    )
    server = Server(name, argv, port, env, ctx.run_dir / "logs", cpus=ctx.server_cpus)
    await ctx._start(server)
    try:
        phase = await measured_phase(ctx, server, target, tag, rate=RATE, seconds=seconds)
    finally:
        ctx.stop(server)  # SIGINT: the server returns from main and cProfile writes its file
    return _calls(out), int(phase["sent"])


async def _per_message(ctx: Context, target: str, tag: str) -> dict[str, float]:
    short, sent_short = await _one(ctx, target, SECONDS[0], f"{tag}s")
    long, sent_long = await _one(ctx, target, SECONDS[1], f"{tag}l")
    extra = sent_long - sent_short
    return {
        name: (long.get(name, 0) - short.get(name, 0)) / extra
        for name in set(short) | set(long)
        if long.get(name, 0) != short.get(name, 0)
    }


async def run(ctx: Context) -> dict[str, Any]:
    ctx.check_budget(120)
    base = await _per_message(ctx, "baseline", "cb")
    gate = await _per_message(ctx, "gateway", "cg")
    total_base, total_gate = sum(base.values()), sum(gate.values())
    top = sorted(gate.items(), key=lambda kv: -kv[1])[:TOP]
    return {
        "rate": RATE,
        "seconds": list(SECONDS),
        "calls_per_message": {"baseline": total_base, "gateway": total_gate},
        "ratio": total_gate / total_base if total_base else None,
        "gateway_top": [
            [name, round(calls, 2), round(base.get(name, 0.0), 2)] for name, calls in top
        ],
    }
