"""Instructions per message under callgrind: the gateway against the bare relay, counted.

The CPU ratio at 10k msg/s moved between 1.22x and 1.39x over three runs of the same code on one
host (the relay's own share between 21.9% and 30.0% of its core), more than a change to the hot
path saves. Valgrind's callgrind counts the instructions a process executes in user space, and
that count repeats within a fraction of a percent from run to run, whatever else the machine
does. Each server runs under callgrind through the 1:1 x10 load; the counters are zeroed when
the measured phase starts and dumped when it ends (``callgrind_control``), so start-up and
warm-up are left out.

What the kernel does for the process (its socket reads and writes, ``epoll``) is not counted, and
it is about the same for both servers, so this ratio is higher than the CPU ratio: it is the
user-space work, which is what the gateway's own code can change. At a low rate a message costs
more than at 10k msg/s, since the gateway's fixed costs per second (a batch written every 50 ms,
its timers) are shared by fewer messages; compare runs at the same rate.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from bench.calls import measured_phase, server_command
from bench.common import Context
from bench.infra import PYTHON, Server
from tests.support.servers import free_port

RATE = 400
"""Messages per second: the most a server under callgrind (about 50 times slower) keeps up with
on this bench's hosts without queueing."""

SECONDS = 5.0

READY_TIMEOUT = 300.0
"""Start-up under callgrind (migrations, imports) takes tens of seconds."""


def _control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True, timeout=60)


def _instructions(path: Path) -> int:
    """The total of a callgrind output file (its ``totals:`` or ``summary:`` line)."""
    with path.open() as lines:
        for line in lines:
            if line.startswith(("totals:", "summary:")):
                return int(line.split()[1])
    raise RuntimeError(f"{path}: no totals line")


async def _per_message(ctx: Context, target: str) -> dict[str, Any]:
    port = free_port()
    name = f"instructions-{target}"
    out = ctx.run_dir / f"{name}.callgrind"
    wrapper = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p", PYTHON, "-m"]
    argv, env = server_command(ctx, target, port, name, wrapper)
    server = Server(name, argv, port, env, ctx.run_dir / "logs", cpus=ctx.server_cpus)
    await ctx._start(server, READY_TIMEOUT)
    try:
        pid = str(server.pid)
        phase = await measured_phase(
            ctx,
            server,
            target,
            f"i{target[0]}",
            rate=RATE,
            seconds=SECONDS,
            around=(lambda: _control("--zero", pid), lambda: _control("--dump", pid)),
        )
    finally:
        ctx.stop(server)
    dumps = sorted(out.parent.glob(f"{out.name}.*.1"))
    if not dumps:
        raise RuntimeError(f"{name}: callgrind wrote no dump")
    sent = int(phase["sent"])
    return {"messages": sent, "per_message": _instructions(dumps[-1]) / sent}


async def run(ctx: Context) -> dict[str, Any]:
    missing = [tool for tool in ("valgrind", "callgrind_control") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"not installed: {', '.join(missing)} (Debian's valgrind package)")
    ctx.check_budget(240)
    base = await _per_message(ctx, "baseline")
    gate = await _per_message(ctx, "gateway")
    return {
        "rate": RATE,
        "seconds": SECONDS,
        "baseline": base,
        "gateway": gate,
        "ratio": gate["per_message"] / base["per_message"],
    }
