"""``python -m bench``: every scenario in one bounded run, then tables, JSON, plot and README.

Options: ``--quick`` (a smoke run of about a minute), ``--only``/``--skip`` (scenario names),
``--budget SECONDS`` (default 1200: a scenario that would not fit is skipped, not started),
``--bus redis`` (single-instance scenarios on the Redis bus instead of the in-process one),
``--no-readme`` (leave bench/README.md alone; quick runs never touch it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench import RESULTS_DIR, raise_nofile_limit
from bench.common import BudgetExceeded, Context
from bench.infra import (
    NICE,
    Sampler,
    autogroups_off,
    bench_database,
    cpu_split,
    machine_info,
    postgres_server,
    postgres_version,
    redis_server,
    redis_version,
)

SCENARIOS = (
    "authcheck",
    "fanout",
    "calls",
    "instructions",
    "cluster",
    "connections",
    "revocation",
    "login",
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run (about a minute)")
    parser.add_argument(
        "--only", default="", help=f"comma-separated subset of {','.join(SCENARIOS)}"
    )
    parser.add_argument("--skip", default="", help="comma-separated scenarios to leave out")
    parser.add_argument("--budget", type=float, default=1200.0, help="seconds for the whole run")
    parser.add_argument(
        "--bus",
        choices=("memory", "redis"),
        default="memory",
        help="bus of the single-instance scenarios (revocation always uses Redis)",
    )
    parser.add_argument("--no-readme", action="store_true", help="do not update bench/README.md")
    parser.add_argument(
        "--no-pin", action="store_true", help="do not give the server under test a CPU of its own"
    )
    return parser


def _selected(args: argparse.Namespace) -> list[str]:
    only = [s for s in args.only.split(",") if s]
    skip = {s for s in args.skip.split(",") if s}
    for name in [*only, *skip]:
        if name not in SCENARIOS:
            raise SystemExit(f"unknown scenario {name!r} (one of {', '.join(SCENARIOS)})")
    return [s for s in SCENARIOS if (not only or s in only) and s not in skip]


def _on_sigterm(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))


async def _run_all(ctx: Context, names: list[str], common: dict[str, Any]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        started = time.monotonic()
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        print(f"[bench] {name} ...", flush=True)
        entry: dict[str, Any] = {"scenario": name, "started_at": stamp, **common}
        try:
            ctx.check_budget(20)
            entry["results"] = await module.run(ctx)
            entry["status"] = "ok"
        except BudgetExceeded as exc:
            entry["status"] = f"skipped: time budget ({exc})"
        except Exception as exc:
            entry["status"] = f"failed: {type(exc).__name__}: {exc}"
            entry["traceback"] = traceback.format_exc()
            print(entry["traceback"], file=sys.stderr, flush=True)
        finally:
            ctx.stop_all()
        entry["seconds"] = round(time.monotonic() - started, 1)
        entry["loadavg_after"] = list(os.getloadavg())
        results[name] = entry
        suffix = "-quick" if ctx.quick else ""
        _write(ctx.results_dir / f"{name}{suffix}.json", entry)
        print(f"[bench] {name}: {entry['status']} in {entry['seconds']}s", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    names = _selected(args)
    started = time.monotonic()
    signal.signal(signal.SIGTERM, _on_sigterm)
    raise_nofile_limit()
    # The orchestrator samples CPU on a thread: at a lower priority than the processes it
    # watches it would be starved exactly when the machine is busy, and its windows would blur.
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, NICE)
    machine = machine_info()
    run_dir = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    (run_dir / "logs").mkdir()
    sampler = Sampler()
    sampler.start()
    results: dict[str, Any] = {}
    infra: dict[str, Any] = {}
    try:
        with (
            autogroups_off() as autogroups,
            postgres_server() as (pg_server, pg_source),
            bench_database(pg_server) as database_url,
            redis_server() as (redis_url, redis_source),
        ):
            infra = {
                "postgres": {
                    "source": pg_source,
                    "version": asyncio.run(postgres_version(database_url)),
                },
                "redis": {"source": redis_source, "version": redis_version(redis_url)},
                "single_instance_bus": args.bus,
            }
            ctx = Context(
                quick=args.quick,
                database_url=database_url,
                redis_url=redis_url,
                run_dir=run_dir,
                sampler=sampler,
                deadline=started + args.budget,
                redis_bus=args.bus == "redis",
            )
            split = None if args.no_pin else cpu_split()
            if split is not None:
                ctx.server_cpus, ctx.client_cpus = split
            infra["cpu_pinning"] = (
                None if split is None else {"server": sorted(split[0]), "clients": sorted(split[1])}
            )
            infra["autogroups"] = autogroups
            common = {"quick": args.quick, "machine": machine, "infra": infra}
            try:
                results = asyncio.run(_run_all(ctx, names, common))
            finally:
                ctx.stop_all()
    except KeyboardInterrupt:
        print("[bench] interrupted; everything started was stopped", file=sys.stderr)
        return 130
    finally:
        sampler.stop()
        logs = RESULTS_DIR / "logs"
        with contextlib.suppress(OSError):
            shutil.rmtree(logs, ignore_errors=True)
            shutil.copytree(run_dir / "logs", logs)
        shutil.rmtree(run_dir, ignore_errors=True)

    wall = time.monotonic() - started
    from bench import report

    summary = report.build_summary(results, machine, infra, quick=args.quick, wall_seconds=wall)
    partial = bool(args.only or args.skip)
    suffix = "-quick" if args.quick else "-partial" if partial else ""
    _write(RESULTS_DIR / f"summary{suffix}.json", summary)
    text = report.render_text(summary)
    print(text)
    with contextlib.suppress(Exception):
        from bench import plot

        plot.render(results, RESULTS_DIR / f"latency{suffix}.png")
    if not suffix and not args.no_readme:
        report.update_readme(summary)
    print(f"[bench] wall time {wall:.0f}s; results in {RESULTS_DIR}")
    failed = [
        name for name, entry in results.items() if str(entry.get("status", "")).startswith("failed")
    ]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
