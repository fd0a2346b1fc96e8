"""Latency against offered rate, gateway and baseline side by side (one PNG, matplotlib).

One panel per fan-out topology: p50 (dashed) and p99 (solid) end-to-end latency at each fixed
offered rate, and the saturated "max" run drawn as a marker at the rate it actually delivered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLORS = {"baseline": "#4c72b0", "gateway": "#dd8452"}


def render(results: dict[str, Any], path: Path) -> Path | None:
    fanout = (results.get("fanout") or {}).get("results")
    if not fanout:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    topologies = sorted({run["topology"] for run in fanout["runs"]})
    figure, axes = plt.subplots(
        1, len(topologies), figsize=(6.0 * len(topologies), 4.4), squeeze=False
    )
    for axis, topology in zip(axes[0], topologies, strict=True):
        for run in fanout["runs"]:
            if run["topology"] != topology:
                continue
            target = run["target"]
            color = COLORS.get(target, "black")
            rated = [
                p
                for p in run["phases"]
                if p["mode"] == "rate" and p["latency_ms"]["n"] and p.get("round", 1) == 1
            ]
            rates = [p["offered_per_s"] for p in rated]
            axis.plot(
                rates,
                [p["latency_ms"]["p99"] for p in rated],
                "-o",
                color=color,
                label=f"{target} p99",
            )
            axis.plot(
                rates,
                [p["latency_ms"]["p50"] for p in rated],
                "--o",
                color=color,
                alpha=0.7,
                label=f"{target} p50",
            )
            for phase in run["phases"]:
                if (
                    phase["mode"] == "max"
                    and phase["latency_ms"]["n"]
                    and phase.get("round", 1) == 1
                ):
                    axis.plot(
                        [phase["delivered_per_s"]],
                        [phase["latency_ms"]["p99"]],
                        "X",
                        color=color,
                        markersize=10,
                        label=f"{target} saturated (p99)",
                    )
        axis.axhline(5.0, color="grey", linestyle=":", linewidth=1, label="target p99 5 ms")
        axis.set_yscale("log")
        axis.set_xlabel("deliveries per second: offered (lines), delivered when saturated (X)")
        axis.set_ylabel("end-to-end latency (ms)")
        axis.set_title(f"fan-out {topology}")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7)
    figure.suptitle("Gateway vs bare aiohttp relay: latency against offered rate")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
