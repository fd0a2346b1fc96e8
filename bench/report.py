"""Tables and the summary JSON of a run, and the figures block of bench/README.md.

Every throughput and memory figure is shown absolute and as a ratio to the baseline measured in
the same run; every target is listed with the measured figure and whether it was met.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from bench import BENCH_DIR

README = BENCH_DIR / "README.md"
START = "<!-- bench:figures:start -->"
END = "<!-- bench:figures:end -->"


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def x(value: float | None) -> str:
    """A ratio to the baseline."""
    return "n/a" if value is None else f"{value:.2f}x"


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _results(results: dict[str, Any], name: str) -> dict[str, Any] | None:
    entry = results.get(name) or {}
    found: dict[str, Any] | None = entry.get("results")
    return found


# -- targets -------------------------------------------------------------------------------


SATURATED = 85.0
"""Baseline CPU (% of its core) at a fixed rate from which that rate is the host's limit: the
ratios there measure two queues, not the cost of a message, and are not judged."""

NOT_JUDGED = "not judged"


def _judged(met: bool, row: dict[str, Any]) -> bool | str:
    base = row.get("baseline_cpu_percent")
    return NOT_JUDGED if base is not None and base >= SATURATED else met


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each goal of the issue with the figure this run measured."""
    rows: list[dict[str, Any]] = []
    fanout = _results(results, "fanout")
    if fanout:
        for row in fanout["summary"]["rows"]:
            if row["label"] == "max":
                value = row["delivered_ratio"]
                rows.append(
                    {
                        "target": f"fan-out {row['topology']}: delivered msg/s vs baseline",
                        "goal": ">= 0.80x",
                        "measured": f"{x(value)} ({fmt(row['gateway_delivered_per_s'])} vs "
                        f"{fmt(row['baseline_delivered_per_s'])} msg/s)",
                        "met": value is not None and value >= 0.8,
                    }
                )
        for row in fanout["summary"]["rows"]:
            if row["label"] == "r10000" and row["topology"].startswith("1:1"):
                cpu = row["cpu_ratio"]
                rounds = row.get("cpu_ratio_rounds") or []
                spread = (
                    f"; {len(rounds)} rounds, each {x(min(rounds))}-{x(max(rounds))}"
                    if len(rounds) > 1
                    else ""
                )
                rows.append(
                    {
                        "target": f"fan-out {row['topology']} at 10k msg/s: CPU vs baseline",
                        "goal": "<= 1.30x",
                        "measured": f"{x(cpu)} ({fmt(row['gateway_cpu_percent'])} vs "
                        f"{fmt(row['baseline_cpu_percent'])} %{spread})",
                        "met": _judged(cpu is not None and cpu <= 1.3, row),
                    }
                )
                p99 = row["p99_ratio"]
                rows.append(
                    {
                        "target": f"fan-out {row['topology']} at 10k msg/s: p99 vs baseline",
                        "goal": "<= 2.00x",
                        "measured": f"{x(p99)} ({fmt(row['gateway_latency_ms']['p99'], 2)} vs "
                        f"{fmt(row['baseline_latency_ms']['p99'], 2)} ms)",
                        "met": _judged(p99 is not None and p99 <= 2.0, row),
                    }
                )
                control = row.get("p99_ratio_vs_stored")
                if control is not None:
                    rows.append(
                        {
                            "target": f"(control) fan-out {row['topology']} at 10k msg/s: p99 vs "
                            "the relay that also stores",
                            "goal": "<= 2.00x",
                            "measured": f"{x(control)} ({fmt(row['gateway_latency_ms']['p99'], 2)}"
                            f" vs {fmt(row['stored_latency_ms']['p99'], 2)} ms; CPU "
                            f"{x(row.get('cpu_ratio_vs_stored'))})",
                            "met": None,
                        }
                    )
        lost = [
            r
            for r in fanout["summary"]["rows"]
            if r["delivered"] != r["expected"]
            or (r["stored"] is not None and r["stored"] != r["acked"])
        ]
        rows.append(
            {
                "target": "fan-out: nothing lost (acked = sent, delivered = expected, "
                "stored = acked)",
                "goal": "0 lost",
                "measured": "0 lost in every phase"
                if not lost
                else "; ".join(
                    f"{r['topology']} {r['label']}: delivered {r['delivered']}/"
                    f"{r['expected']}, stored {r['stored']}/{r['acked']}"
                    for r in lost
                ),
                "met": not lost,
            }
        )
    connections = _results(results, "connections")
    if connections:
        s = connections["summary"]
        rows.append(
            {
                "target": "idle sessions: memory per session vs baseline",
                "goal": "<= 1.05x",
                "measured": f"{x(s['memory_ratio'])} ({fmt(s['gateway_kib_per_session'], 1)} vs "
                f"{fmt(s['baseline_kib_per_session'], 1)} KiB)",
                "met": s["memory_ratio"] is not None and s["memory_ratio"] <= 1.05,
            }
        )
        if s.get("memory_ratio_vs_lean") is not None:
            rows.append(
                {
                    "target": "(what-if) idle sessions: memory per session vs the relay keeping "
                    "no reference to its last message",
                    "goal": "<= 1.05x",
                    "measured": f"{x(s['memory_ratio_vs_lean'])} "
                    f"({fmt(s['gateway_kib_per_session'], 1)} vs "
                    f"{fmt(s['lean_baseline_kib_per_session'], 1)} KiB)",
                    "met": None,
                }
            )
        flat = s.get("flat_ratio")
        if flat is not None:
            rows.append(
                {
                    "target": "idle sessions: memory per session flat up to the open-file limit",
                    "goal": "<= 1.05x of the compared step",
                    "measured": f"{x(flat)} at {fmt(s['max_held'])} sessions "
                    f"(slope {fmt(s['slope_kib_per_session'].get('gateway'), 1)} KiB/session)",
                    "met": flat <= 1.05,
                }
            )
        rows.append(
            {
                "target": "idle sessions held by one process",
                "goal": ">= 50,000",
                "measured": f"{fmt(s['max_held'])} of {fmt(s['max_requested'])} tried "
                f"(open-file limit {fmt(connections['parameters']['nofile_soft_limit'])})",
                "met": (s["max_held"] or 0) >= 50_000,
            }
        )
    revocation = _results(results, "revocation")
    if revocation:
        s = revocation["summary"]
        rows.append(
            {
                "target": f"revocation across instances, {fmt(s['sessions'])} live sessions: p99",
                "goal": "<= 10 ms",
                "measured": f"{fmt(s['single_close_ms']['p99'], 2)} ms (p50 "
                f"{fmt(s['single_close_ms']['p50'], 2)}, "
                f"max {fmt(s['single_close_ms']['max'], 2)}){_revocation_context(s)}",
                "met": s["met"],
            }
        )
    login = _results(results, "login")
    if login:
        s = login["summary"]
        rows.append(
            {
                "target": "event-loop lag p99 while serving logins at the maximum rate",
                "goal": "<= 5 ms",
                "measured": f"{fmt(s['lag_p99_ms'], 1)} ms at "
                f"{fmt(s['logins_per_s'], 1)} logins/s "
                f"(idle {fmt(s['lag_p99_ms_idle'], 1)} ms)",
                "met": s["met"],
            }
        )
    authcheck = _results(results, "authcheck")
    if authcheck:
        rows.append(
            {
                "target": "per-message check alone",
                "goal": "<= 2 us",
                "measured": f"{authcheck['check_us']:.2f} us",
                "met": authcheck["met"],
            }
        )
    return rows


# -- scenario tables -----------------------------------------------------------------------


def _met(met: bool | str | None) -> str:
    """None: a control that explains a target, not a target of its own; a string: a target
    this run could not judge (the baseline saturated its core at that rate)."""
    if isinstance(met, str):
        return f"{met} (baseline at >= {SATURATED:.0f}% CPU)"
    return "control" if met is None else "yes" if met else "**no**"


def _lat(latency: dict[str, Any]) -> str:
    return f"{fmt(latency['p50'], 2)} / {fmt(latency['p99'], 2)} / {fmt(latency['max'], 1)}"


def _socket_p99(row: dict[str, Any]) -> str:
    base, gate = row.get("baseline_socket_latency_ms"), row.get("gateway_socket_latency_ms")
    if not base or not gate:
        return "n/a"
    return f"{fmt(base['p99'], 2)} / {fmt(gate['p99'], 2)}"


def fanout_tables(fanout: dict[str, Any]) -> str:
    rows = fanout["summary"]["rows"]
    throughput = table(
        [
            "topology",
            "phase",
            "offered/s",
            "baseline msg/s",
            "gateway msg/s",
            "ratio",
            "CPU base %",
            "CPU gw %",
            "CPU ratio",
            "PG CPU %",
            "RSS base MiB",
            "RSS gw MiB",
            "RSS ratio",
        ],
        [
            [
                r["topology"],
                r["label"],
                r["offered_per_s"] or "max",
                r["baseline_delivered_per_s"],
                r["gateway_delivered_per_s"],
                x(r["delivered_ratio"]),
                r["baseline_cpu_percent"],
                r["gateway_cpu_percent"],
                x(r["cpu_ratio"]),
                r["postgres_cpu_percent"],
                r["baseline_rss_mib"],
                r["gateway_rss_mib"],
                x(r["rss_ratio"]),
            ]
            for r in rows
        ],
    )
    latency = table(
        [
            "topology",
            "phase",
            "baseline p50 / p99 / max ms",
            "gateway p50 / p99 / max ms",
            "p99 ratio",
            "relay that stores: p50 / p99 / max ms",
            "its CPU %",
            "gateway p99 ratio to it",
            "p99 at the dashboards' sockets: baseline / gateway ms",
        ],
        [
            [
                r["topology"],
                r["label"],
                _lat(r["baseline_latency_ms"]),
                _lat(r["gateway_latency_ms"]),
                x(r["p99_ratio"]),
                _lat(r["stored_latency_ms"]) if r.get("stored_latency_ms") else "n/a",
                r.get("stored_cpu_percent"),
                x(r.get("p99_ratio_vs_stored")),
                _socket_p99(r),
            ]
            for r in rows
        ],
    )
    split_rows = [r for r in rows if r["offered_per_s"] and r.get("user_cpu_ratio") is not None]
    split = table(
        [
            "topology",
            "phase",
            "user space: baseline / gateway %",
            "user ratio",
            "kernel: baseline / gateway %",
            "kernel ratio",
            "host steal in the windows: baseline / gateway %",
        ],
        [
            [
                r["topology"],
                r["label"],
                f"{fmt(r['baseline_user_cpu_percent'])} / {fmt(r['gateway_user_cpu_percent'])}",
                x(r["user_cpu_ratio"]),
                f"{fmt(r['baseline_kernel_cpu_percent'])} / {fmt(r['gateway_kernel_cpu_percent'])}",
                x(r.get("kernel_cpu_ratio")),
                f"{fmt(r.get('baseline_steal_percent'))} / {fmt(r.get('gateway_steal_percent'))}",
            ]
            for r in split_rows
        ],
    )
    counts = table(
        [
            "topology",
            "phase",
            "sent",
            "acked",
            "errors",
            "delivered",
            "expected",
            "stored",
            "skipped by loadgen",
            "loadgen CPU %",
        ],
        [
            [
                r["topology"],
                r["label"],
                r["sent"],
                r["acked"],
                r["errors"],
                r["delivered"],
                r["expected"],
                r["stored"],
                r["skipped"],
                r["loadgen_cpu_percent"],
            ]
            for r in rows
        ],
    )
    return (
        "**Throughput and resources** (msg/s = deliveries per second at the dashboards; CPU in % "
        "of one core; PG = the PostgreSQL backends serving the gateway)\n\n"
        + throughput
        + "\n\n**Where the server's CPU goes at a fixed rate** (user space: the process's own "
        "code, Python and the C it calls; kernel: system time spent for it, socket reads and "
        "writes, `epoll`; host steal: time the hypervisor gave the VM's CPUs to others, in % of "
        "one core, which stalls whatever was on them; medians of the rounds)\n\n"
        + split
        + "\n\n**End-to-end latency** (publisher send to dashboard receive; the control is the "
        "bare relay also writing what it acknowledges to the same PostgreSQL, every 50 ms with "
        "the gateway's insert; the last column times the same pushes to when the kernel queued "
        "them on the dashboard's socket, without the load generator's own delay in reading "
        "them)\n\n"
        + latency
        + "\n\n**Nothing lost** (gateway; stored = rows in `notifications` after the writer "
        "flushed)\n\n" + counts
    )


def connections_table(connections: dict[str, Any]) -> str:
    runs = connections["runs"]
    s = connections["summary"]
    rows = []
    for name in ("baseline", "gateway", "baseline_max", "gateway_max", "baseline_lean"):
        run = runs.get(name)
        if run is None:
            continue
        base = runs["baseline"]
        rows.append(
            [
                name,
                run["held"],
                run["failed"],
                run["connect_per_s"],
                x(run["connect_per_s"] / base["connect_per_s"]) if base["connect_per_s"] else "n/a",
                run["rss_before_mib"],
                run["rss_held_mib"],
                run["rss_per_session_kib"],
                x(run["rss_per_session_kib"] / base["rss_per_session_kib"])
                if run["rss_per_session_kib"] and base["rss_per_session_kib"]
                else "n/a",
                run["idle_cpu_percent"],
                run["dropped_while_held"],
            ]
        )
    return (
        table(
            [
                "server",
                "sessions held",
                "failed",
                "connect+auth /s",
                "ratio",
                "RSS before MiB",
                "RSS held MiB",
                "KiB / session",
                "ratio",
                "idle CPU %",
                "dropped",
            ],
            rows,
        )
        + "\n\nEvery step is read once each of its sessions has answered a ping (both servers "
        + f"ping every {fmt(connections['parameters'].get('heartbeat_seconds', 30.0), 0)} s here, "
        "30 s as shipped; with aiohttp's heartbeat, which the relay keeps, the first ping leaves "
        "a session about 1.5-1.9 KiB larger, then it stays flat), and the idle CPU includes those "
        "pings."
        + "\n\n`baseline_lean` is the what-if: the same relay with its read loop keeping no "
        "reference to a handled message (the gateway's keeps none; the relay as written keeps "
        "its last one, an `authenticate` with its token, and that message's parse).\n\n"
        + "Target 50,000 sessions on one process: "
        + f"tried {fmt(s['max_requested'])}, held {fmt(s['max_held'])}."
        + _slopes(connections)
    )


def _slopes(connections: dict[str, Any]) -> str:
    """RSS at each step, the fitted slope and what it projects past the open-file limit."""
    held = connections.get("held")
    if not held:
        return ""
    rows = []
    for name, result in held.items():
        projected = result["projected_mib"]
        rows.append(
            [
                name,
                ", ".join(
                    f"{fmt(step['held'])}: {fmt(step['rss_held_mib'], 0)}"
                    for step in result["steps"]
                ),
                result["slope_kib_per_session"],
                ", ".join(fmt(v, 1) for v in result["step_kib_per_session"]),
                projected.get("50000"),
                projected.get("100000"),
            ]
        )
    return "\n\n**Memory slope** (RSS in MiB after each step; least-squares fit; sessions from " + (
        "several loopback source addresses)\n\n"
        + table(
            [
                "server",
                "sessions: RSS MiB",
                "slope KiB / session",
                "KiB / session between steps",
                "projected MiB at 50,000",
                "projected MiB at 100,000",
            ],
            rows,
        )
    )


def revocation_table(revocation: dict[str, Any]) -> str:
    s = revocation["summary"]
    rows = [
        [
            "logout on the other instance, one by one",
            s["single_close_ms"]["n"],
            _lat(s["single_close_ms"]),
            _lat(s["single_http_ms"]),
        ]
    ]
    for group in s["logout_all"]:
        rows.append(
            [
                f"logout/all, one user with {fmt(group['sessions'])} sessions on both instances",
                group["closed"],
                _lat(group["close_ms"]),
                fmt(group["http_ms"], 1),
            ]
        )
    return table(
        [
            "what",
            "sessions closed",
            "request -> close frame p50 / p99 / max ms",
            "HTTP response ms (p50 / p99 / max)",
        ],
        rows,
    ) + (
        f"\n\n{fmt(s['sessions'])} live sessions ({' + '.join(fmt(n) for n in s['per_instance'])} "
        f"per instance); other users' sessions still open afterwards: "
        f"{fmt(s['fillers_still_open'])} of {fmt(s['fillers'])}. " + _stalls(s)
    )


def _revocation_context(s: dict[str, Any]) -> str:
    """What tells the gateways' tail from what they wait on: their own count of closes, the
    database's commit latency, and the host's steal time."""
    counted = s.get("gateway_counted")
    if not counted:
        return ""
    commits = s.get("postgres_commit_ms") or {}
    return (
        f"; the gateways counted {fmt(counted['within'])} of {fmt(counted['closes'])} closes "
        f"within {fmt(counted['within_ms'], 0)} ms; one commit on this PostgreSQL alone: p50 "
        f"{fmt(commits.get('p50'), 2)}, p99 {fmt(commits.get('p99'), 2)}, max "
        f"{fmt(commits.get('max'), 2)} ms; host steal {fmt(s.get('host_steal_percent'))} % "
        "of a core"
    )


def _stalls(s: dict[str, Any]) -> str:
    warm = ", ".join(fmt(v, 1) for v in s.get("warmup_close_ms") or [] if v is not None)
    parts = [f"First logouts (warm-up, not counted): {warm} ms." if warm else ""]
    for name, item in (s.get("stalls") or {}).items():
        parts.append(
            f"{name} while logging out one by one: loop lag p99 {fmt(item['lag_p99_ms'], 1)} ms, "
            f"max {fmt(item['lag_max_ms'], 1)} ms; full GCs {item['gen2']['count']} "
            f"(longest {fmt(item['gen2']['max_ms'], 1)} ms), young GCs "
            f"{item['gen0']['count'] + item['gen1']['count']} (longest "
            f"{fmt(max(item['gen0']['max_ms'], item['gen1']['max_ms']), 1)} ms)."
        )
    own = s.get("loadgen_gc")
    if own:
        parts.append(
            f"The load generator's own collections meanwhile: full {own['gen2']['count']} "
            f"(longest {fmt(own['gen2']['max_ms'], 1)} ms), young "
            f"{own['gen0']['count'] + own['gen1']['count']} (longest "
            f"{fmt(max(own['gen0']['max_ms'], own['gen1']['max_ms']), 1)} ms)."
        )
    return " ".join(p for p in parts if p)


def login_table(login: dict[str, Any]) -> str:
    s = login["summary"]
    argon = login["parameters"]["argon2"]
    rows = [
        ["idle", None, s["lag_p99_ms_idle"], s["turn_p99_ms_idle"], None, None],
        [
            f"live traffic {fmt(login['parameters']['traffic_rate'])} msg/s",
            None,
            s["lag_p99_ms_traffic"],
            s["turn_p99_ms_traffic"],
            s["traffic_p99_ms_alone"],
            None,
        ],
        [
            f"traffic + logins ({login['parameters']['concurrency']} concurrent)",
            s["logins_per_s"],
            s["lag_p99_ms"],
            s["turn_p99_ms"],
            s["traffic_p99_ms"],
            s["loop_thread_runqueue_wait_percent"],
        ],
    ]
    what_if = s.get("what_if")
    if what_if:
        rows.append(
            [
                f"what-if: hash threads {login['parameters']['what_if_hasher_nice']} nice "
                "levels below the loop",
                what_if["logins_per_s"],
                what_if["lag_p99_ms"],
                what_if["turn_p99_ms"],
                what_if["traffic_p99_ms"],
                what_if["loop_thread_runqueue_wait_percent"],
            ]
        )
    return table(
        [
            "window",
            "logins/s",
            "loop lag p99 ms (timer)",
            "ready-task wait p99 ms",
            "fan-out p99 ms",
            "loop thread waiting for a CPU %",
        ],
        rows,
    ) + (
        f"\n\nLogins: {fmt(s['logins_per_s'], 1)}/s, {x(s.get('logins_ratio'))} of the bare "
        f"hashing ceiling ({fmt(s.get('hash_ceiling_per_s'), 1)} argon2id verifications/s on "
        f"{argon['hash_workers']} threads, nothing else running). "
        f"argon2id t={argon['time_cost']}, m={fmt(argon['memory_kib'])} KiB, "
        f"p={argon['parallelism']}, {argon['hash_workers']} hash workers; login p50 "
        f"{fmt(s['login_latency_ms']['p50'], 0)} ms. "
        f"Server CPU {fmt(s['server_cpu_percent'], 0)}%, "
        f"whole machine {fmt(s['machine_cpu_percent'], 0)}% (100% = one core) while logging in."
    )


def authcheck_table(authcheck: dict[str, Any]) -> str:
    roles = authcheck["roles"]
    names = list(roles["client"])
    return table(
        ["what", "client us/msg", "admin us/msg"],
        [[name, f"{roles['client'][name]:.3f}", f"{roles['admin'][name]:.3f}"] for name in names],
    )


def calls_table(calls: dict[str, Any]) -> str:
    per = calls["calls_per_message"]
    lead = (
        f"Each server under cProfile, 1:1 x10 at {calls['rate']:,} msg/s, measured phases of "
        f"{' and '.join(f'{s:.0f}' for s in calls['seconds'])} s, the difference divided by "
        f"the difference in messages: **{per['gateway']:.1f} calls per message against "
        f"{per['baseline']:.1f} for the bare relay ({fmt(calls['ratio'], 2)}x)**. The gateway's "
        "most frequent calls per message (builtins included), and the relay's count of the same:"
    )
    rows = [[name, f"{n:.2f}", f"{b:.2f}"] for name, n, b in calls["gateway_top"]]
    return lead + "\n\n" + table(["call", "gateway", "bare relay"], rows)


def instructions_table(counted: dict[str, Any]) -> str:
    base, gate = counted["baseline"], counted["gateway"]
    return (
        f"Each server under valgrind's callgrind, 1:1 x10 at {counted['rate']:,} msg/s, the "
        f"counters zeroed and dumped around a measured phase of {counted['seconds']:.0f} s "
        f"({gate['messages']:,} and {base['messages']:,} messages): **{gate['per_message']:,.0f} "
        f"instructions per message in user space against {base['per_message']:,.0f} for the bare "
        f"relay ({fmt(counted['ratio'], 2)}x)**. On this bench's hosts the gateway's count moved "
        "by up to 4% between runs of the same code, the relay's by under 1%: compare counts from "
        "one run. The kernel's work (socket reads and writes) is not in it."
    )


# -- profiles ------------------------------------------------------------------------------


def _shares(items: list[list[Any]] | None, limit: int) -> list[tuple[str, float]]:
    return [(str(name), float(share)) for name, share in (items or [])[:limit]]


def profiles_markdown(results: dict[str, Any]) -> str:
    """The evidence behind the missed targets, from the unmeasured profiling passes."""
    parts: list[str] = []
    fanout = results.get("fanout") or {}
    profiles = fanout.get("profiles") or {}
    if profiles.get("error"):
        parts += [
            f"The fan-out's profiling passes failed ({profiles['error']}); "
            "its measured runs stand.",
            "",
        ]
    gate, base = profiles.get("gateway-max") or {}, profiles.get("baseline-max") or {}
    if gate.get("samples"):
        base_share = dict(_shares(base.get("by_package_percent"), 30))
        parts += [
            "**Fan-out, 1:1 saturated: where the CPU goes** (py-spy, "
            f"{gate['samples']} samples of the gateway, {base.get('samples', 0)} of the baseline; "
            "% of samples by the package of the innermost Python frame, C code counted in its "
            "caller)",
            "",
            table(
                ["package", "gateway %", "baseline %"],
                [
                    [name, share, base_share.get(name)]
                    for name, share in _shares(gate.get("by_package_percent"), 12)
                ],
            ),
            "",
            "Gateway, top functions by own time: "
            + "; ".join(
                f"{name} {share:.1f}%" for name, share in _shares(gate.get("self_percent"), 12)
            )
            + ".",
        ]
    steady, frozen = profiles.get("gateway-r10000"), profiles.get("gateway-gcfreeze-r10000")
    if steady and frozen:
        rows = []
        for label, item in (
            ("as shipped", steady),
            ("what-if: gc.freeze() after start-up", frozen),
        ):
            lag, gc = item["lag_and_gc"], item["lag_and_gc"]["gc"]
            latency = item["phase"]["latency_ms"]
            rows.append(
                [
                    label,
                    _lat(latency),
                    lag["timer"].get("p99_ms"),
                    lag["turn"].get("p99_ms"),
                    f"{gc['gen2']['count']} / {gc['gen2']['max_ms']:.1f}",
                    f"{gc['gen0']['count'] + gc['gen1']['count']} / "
                    f"{gc['gen0']['total_ms'] + gc['gen1']['total_ms']:.0f}",
                ]
            )
        parts += [
            "",
            "**Fan-out 1:1 at 10k msg/s: what makes the tail** (probe wrapper: loop lag and every "
            "garbage collection timed; no profiler attached)",
            "",
            table(
                [
                    "gateway",
                    "p50 / p99 / max ms",
                    "loop lag p99 ms",
                    "ready-task wait p99 ms",
                    "full (gen2) GCs / longest ms",
                    "young GCs / total ms",
                ],
                rows,
            ),
        ]
    connections = results.get("connections") or {}
    breakdown = connections.get("memory_breakdown")
    if breakdown:
        lines = [
            line for line in breakdown["top_lines_bytes_per_session"] if "gateway/" in line["where"]
        ]
        parts += [
            "",
            f"**Idle session memory by source** (tracemalloc, {fmt(breakdown['sessions'])} "
            f"sessions, {breakdown['traced_bytes_per_session']:.0f} B traced per session): "
            + ", ".join(
                f"{name} {size:.0f} B"
                for name, size in breakdown["by_package_bytes_per_session"][:8]
            )
            + ". Gateway lines: "
            + "; ".join(
                f"`{line['where'].split('/work/main/')[-1]}` {line['per_session']:.0f} B"
                for line in lines
            )
            + ".",
        ]
    revocation = results.get("revocation") or {}
    for name, item in (revocation.get("profiles") or {}).items():
        if isinstance(item, dict) and item.get("excerpt"):
            parts += [
                "",
                f"**Revocation: where a logout's time goes on {name}** (pyinstrument, async mode: "
                f"wall-clock seconds summed over {item['calls']} calls, awaits included)",
                "",
                "```",
                *item["excerpt"],
                "```",
            ]
            break
    return "\n".join(parts)


# -- assembly ------------------------------------------------------------------------------


def build_summary(
    results: dict[str, Any],
    machine: dict[str, Any],
    infra: dict[str, Any],
    *,
    quick: bool,
    wall_seconds: float,
) -> dict[str, Any]:
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "wall_seconds": round(wall_seconds, 1),
        "machine": machine,
        "infra": infra,
        "status": {name: entry.get("status") for name, entry in results.items()},
        "seconds": {name: entry.get("seconds") for name, entry in results.items()},
        "targets": targets(results),
        "results": {name: entry.get("results") for name, entry in results.items()},
    }


def render_markdown(summary: dict[str, Any]) -> str:
    machine = summary["machine"]
    infra = summary["infra"]
    versions = machine["versions"]
    parts = [
        f"Run of {summary['generated_at']} ({'quick' if summary['quick'] else 'full'}), "
        f"wall time {summary['wall_seconds']:.0f} s, on {machine['cpu_count_logical']} x "
        f"{machine['cpu_model']}, {fmt(machine['memory_total_mib'])} MiB, "
        f"Linux {machine['kernel']}, "
        f"Python {machine['python']}; aiohttp {versions['aiohttp']}, uvloop {versions['uvloop']}, "
        f"orjson {versions['orjson']}, asyncpg {versions['asyncpg']}; PostgreSQL "
        f"{infra.get('postgres', {}).get('version')} ({infra.get('postgres', {}).get('source')}), "
        f"Redis {infra.get('redis', {}).get('version')}; git {machine['git_commit'][:10]}"
        f" (+{machine['git_dirty_files']} uncommitted files); load average at start "
        f"{', '.join(f'{v:.2f}' for v in machine['loadavg_at_start'])}; server CPU pinning "
        f"{infra.get('cpu_pinning')}; the kernel's autogroups {infra.get('autogroups', 'on')}.",
        "",
        "### Targets",
        "",
        table(
            ["target", "goal", "measured", "met"],
            [[t["target"], t["goal"], t["measured"], _met(t["met"])] for t in summary["targets"]],
        ),
    ]
    results = summary["results"]
    sections = (
        ("fanout", "Fan-out", fanout_tables),
        (
            "cluster",
            "Fan-out across two instances (devices on one, dashboards on the other; CPU of both)",
            fanout_tables,
        ),
        ("connections", "Idle sessions", connections_table),
        ("revocation", "Revocation latency (two instances, Redis bus)", revocation_table),
        ("login", "Logins and event-loop lag", login_table),
        ("authcheck", "Per-message authorization check (timeit, best of 5)", authcheck_table),
        ("calls", "Python calls per message (counted, not timed)", calls_table),
        ("instructions", "Instructions per message (counted, not timed)", instructions_table),
    )
    for name, title, render in sections:
        status = summary["status"].get(name)
        if status is None:
            continue
        parts += ["", f"### {title}", ""]
        if results.get(name):
            parts.append(render(results[name]))
        else:
            parts.append(f"Not measured: {status}")
    evidence = profiles_markdown(results)
    if evidence:
        parts += ["", "### Profiles (unmeasured passes of the same run)", "", evidence]
    seconds = ", ".join(
        f"{name} {value:.0f} s" for name, value in summary["seconds"].items() if value
    )
    parts += ["", f"Scenario times: {seconds}."]
    return "\n".join(parts)


def render_text(summary: dict[str, Any]) -> str:
    return render_markdown(summary)


def update_readme(summary: dict[str, Any]) -> bool:
    """Replace the figures block of bench/README.md (between the markers) with this run's."""
    if not README.exists():
        return False
    text = README.read_text()
    if START not in text or END not in text:
        return False
    block = f"{START}\n{render_markdown(summary)}\n{END}"
    README.write_text(
        re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _m: block, text, flags=re.S)
    )
    return True
