"""``python -m bench.probe serve``: the gateway's own entry point plus opt-in measurement hooks.

Some figures can only be seen from inside the process. This wraps ``gateway.cli.main``
unchanged (same settings, same code paths) and adds, when asked through the environment:

- ``BENCH_LAG=1``: a task that sleeps 5 ms at a time, and ``GET /_bench/lag`` (``?reset=1``
  starts a new window) with two measures per wake-up: ``timer``, how late the sleep ends (the
  usual definition of loop lag; uvloop's timers have 1 ms resolution, so under a millisecond it
  is noise), and ``turn``, how long ``await asyncio.sleep(0)`` takes, i.e. how long a ready
  coroutine waits for its turn (no timer involved). About 200 wake-ups a second.
- ``BENCH_GC_STATS=1``: every garbage collection timed (count, total and longest pause per
  generation), reported with the lag; a loop stall of tens of milliseconds is often one.
- ``BENCH_PROFILE_CALLS=auth.logout,auth.revoke_user``: those ``AuthService`` methods run under
  pyinstrument in async mode while profiling is on (``GET /_bench/profile?start=1``, then
  ``GET /_bench/profile`` for the combined report): wall-clock time, awaits included, which a
  sampling profiler of CPU cannot show.
- ``BENCH_TRACEMALLOC=1``: ``GET /_bench/memory?snapshot=1`` remembers the heap,
  ``GET /_bench/memory`` reports what was allocated since, by source line (for the idle-session
  memory breakdown; tracemalloc slows allocation, so only in an unmeasured pass).
- What-ifs, not the gateway as shipped: ``BENCH_HASHER_NICE=N`` runs the password-hashing threads
  (and the argon2 lane threads they start, which inherit it) N nice levels below the event loop;
  ``BENCH_GC_FREEZE=1`` calls ``gc.freeze()`` once start-up is done, so full collections no
  longer walk the objects of every imported module.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

import gateway.app
from bench import raise_nofile_limit
from gateway import cli

INTERVAL = 0.005

_timer: list[float] = []
_turn: list[float] = []
_gc: dict[int, list[float]] = {0: [], 1: [], 2: []}
_gc_started = [0.0]
_profiling = [False]
_sessions: list[Any] = []


# -- loop lag ------------------------------------------------------------------------------


async def _probe() -> None:
    clock = time.perf_counter
    while True:
        started = clock()
        await asyncio.sleep(INTERVAL)
        woke = clock()
        _timer.append(woke - started - INTERVAL)
        await asyncio.sleep(0)
        _turn.append(clock() - woke)


def _stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    n = len(ordered)

    def at(q: float) -> float:
        return max(0.0, ordered[min(n - 1, int(q * n))]) * 1000

    return {
        "n": n,
        "p50_ms": at(0.5),
        "p90_ms": at(0.9),
        "p99_ms": at(0.99),
        "p999_ms": at(0.999),
        "max_ms": max(0.0, ordered[-1]) * 1000,
    }


# -- garbage collection --------------------------------------------------------------------


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _gc_started[0] = time.perf_counter()
    else:
        _gc[int(info["generation"])].append(time.perf_counter() - _gc_started[0])


def _gc_stats() -> dict[str, Any]:
    return {
        f"gen{generation}": {
            "count": len(pauses),
            "total_ms": sum(pauses) * 1000,
            "max_ms": max(pauses, default=0.0) * 1000,
        }
        for generation, pauses in _gc.items()
    }


async def _lag(request: web.Request) -> web.Response:
    result = {"timer": _stats(list(_timer)), "turn": _stats(list(_turn)), "gc": _gc_stats()}
    if request.query.get("reset"):
        _timer.clear()
        _turn.clear()
        for pauses in _gc.values():
            pauses.clear()
    return web.json_response(result)


# -- wall-clock profile of chosen calls ----------------------------------------------------


def _profiled(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not _profiling[0]:
            return await original(*args, **kwargs)
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0001, async_mode="enabled")
        profiler.start()
        try:
            return await original(*args, **kwargs)
        finally:
            profiler.stop()
            _sessions.append(profiler.last_session)

    return wrapper


def _install_profiling(names: str) -> None:
    from gateway.auth.login import AuthService

    owners = {"auth": AuthService}
    for name in filter(None, (part.strip() for part in names.split(","))):
        owner, _, method = name.partition(".")
        cls = owners[owner]
        setattr(cls, method, _profiled(getattr(cls, method)))


async def _profile(request: web.Request) -> web.Response:
    if request.query.get("start"):
        _sessions.clear()
        _profiling[0] = True
        return web.json_response({"profiling": True})
    _profiling[0] = False
    if not _sessions:
        return web.json_response({"calls": 0})
    from pyinstrument.renderers import ConsoleRenderer
    from pyinstrument.session import Session

    combined = _sessions[0]
    for other in _sessions[1:]:
        combined = Session.combine(combined, other)
    text = ConsoleRenderer(unicode=False, color=False, show_all=False, short_mode=False).render(
        combined
    )
    return web.json_response({"calls": len(_sessions), "seconds": combined.duration, "text": text})


# -- heap growth ---------------------------------------------------------------------------

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(gateway.app.__file__))) + "/"
"""The checkout the gateway runs from: its files are named from there."""
_snapshot: list[tracemalloc.Snapshot] = []


async def _memory(request: web.Request) -> web.Response:
    gc.collect()
    if request.query.get("snapshot"):
        _snapshot[:] = [tracemalloc.take_snapshot()]
        return web.json_response({"snapshot": True})
    if not _snapshot:
        return web.json_response({"error": "no snapshot"})
    current = tracemalloc.take_snapshot()
    diff = current.compare_to(_snapshot[0], "lineno")
    total = sum(stat.size_diff for stat in diff)
    by_file: dict[str, int] = {}
    for stat in diff:
        name = stat.traceback[0].filename
        for marker in ("site-packages/", _ROOT, "lib/python3.11/"):
            if marker in name:
                name = name.split(marker, 1)[1]
        package = name.split("/")[0] if "/" in name else name
        if package == "gateway":
            package = "/".join(name.split("/")[:2])
        by_file[package] = by_file.get(package, 0) + stat.size_diff
    top = [
        {
            "where": f"{stat.traceback[0].filename.split('site-packages/')[-1].split(_ROOT)[-1]}"
            f":{stat.traceback[0].lineno}",
            "bytes": stat.size_diff,
            "blocks": stat.count_diff,
        }
        for stat in diff[:80]
    ]
    return web.json_response(
        {
            "total_bytes": total,
            "by_package": sorted(by_file.items(), key=lambda item: -item[1])[:15],
            "top_lines": top,
        }
    )


# -- what-if: hashing below the event loop's priority ---------------------------------------


def _nice_hashers(step: int) -> None:
    import gateway.auth.passwords as passwords

    base = getattr(passwords, "ThreadPoolExecutor")  # noqa: B009 - the module's own import

    def lower() -> None:
        tid = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, current + step))

    def executor(*args: Any, **kwargs: Any) -> Any:
        return base(*args, initializer=lower, **kwargs)

    setattr(passwords, "ThreadPoolExecutor", executor)  # noqa: B010


# -- wiring --------------------------------------------------------------------------------


def _create_app(settings: Any, original: Any = gateway.app.create_app) -> web.Application:
    app: web.Application = original(settings)
    tasks: list[asyncio.Task[None]] = []
    if os.environ.get("BENCH_LAG"):
        app.router.add_get("/_bench/lag", _lag)

        async def start(_app: web.Application) -> None:
            tasks.append(asyncio.create_task(_probe(), name="bench-lag-probe"))

        async def stop(_app: web.Application) -> None:
            for task in tasks:
                task.cancel()

        app.on_startup.append(start)
        app.on_cleanup.append(stop)
    if os.environ.get("BENCH_PROFILE_CALLS"):
        app.router.add_get("/_bench/profile", _profile)
    if os.environ.get("BENCH_TRACEMALLOC"):
        app.router.add_get("/_bench/memory", _memory)
    if os.environ.get("BENCH_GC_FREEZE"):

        async def freeze(_app: web.Application) -> None:
            gc.collect()
            gc.freeze()

        app.on_startup.append(freeze)
    return app


def main() -> int:
    raise_nofile_limit()
    if os.environ.get("BENCH_GC_STATS"):
        gc.callbacks.append(_on_gc)
    if os.environ.get("BENCH_TRACEMALLOC"):
        tracemalloc.start(1)
    if os.environ.get("BENCH_PROFILE_CALLS"):
        _install_profiling(os.environ["BENCH_PROFILE_CALLS"])
    if os.environ.get("BENCH_HASHER_NICE"):
        _nice_hashers(int(os.environ["BENCH_HASHER_NICE"]))
    gateway.app.create_app = _create_app
    return cli.main(sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
