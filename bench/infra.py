"""What the scenarios run on: PostgreSQL, Redis, server processes, resource sampling.

Servers are found in the same order as the test suite finds them (environment variable, the
local default port, else a throwaway one started here), everything listens on 127.0.0.1 only,
and every process started here is stopped at the end, even on failure: each child also gets
PR_SET_PDEATHSIG so it dies with the benchmark if the benchmark is killed outright.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from tests.support import servers

PYTHON = sys.executable


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM when the benchmark process goes away."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


NICE = -10
"""Priority of every process the benchmark starts (and of the PostgreSQL backends serving its
database): other work on a shared machine then disturbs the measurements less. Needs
CAP_SYS_NICE; without it the processes simply keep the default priority."""


def child_setup(cpus: frozenset[int] | None, nice: int = NICE) -> Callable[[], None]:
    """What a child runs before exec: die with the benchmark, stay on ``cpus`` if given, and
    take the benchmark's priority."""

    def setup() -> None:
        _die_with_parent()
        if cpus:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, cpus)
        if nice:
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, 0, nice)

    return setup


def renice(pid: int, nice: int = NICE) -> bool:
    """Give a process we did not start (a PostgreSQL backend of our database) our priority."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    except OSError:
        return False
    return True


def cpu_split() -> tuple[frozenset[int], frozenset[int]] | None:
    """(CPUs of the server under test, CPUs of the load generators), or None on one CPU:
    the server gets a core of its own, so its CPU share is a share of one core."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    return frozenset(cpus[:1]), frozenset(cpus[1:])


# -- PostgreSQL ----------------------------------------------------------------------------


def postgres_server() -> contextlib.AbstractContextManager[tuple[str, str]]:
    """(URL of a server where we may create databases, where it came from)."""
    return servers.postgres_server("GATEWAY_BENCH_DATABASE_URL", "gateway-bench")


def bench_database(server_url: str) -> contextlib.AbstractContextManager[str]:
    """A database made for this run and dropped after it (also after a failure)."""
    return servers.scratch_database(server_url, "gateway_bench")


async def postgres_version(url: str) -> str:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


# -- Redis ---------------------------------------------------------------------------------


def redis_server() -> contextlib.AbstractContextManager[tuple[str, str]]:
    """(URL of a Redis, where it came from); a redis-server started here dies with us."""
    return servers.redis_server("GATEWAY_BENCH_REDIS_URL", preexec_fn=_die_with_parent)


def redis_version(url: str) -> str:
    import redis

    info = redis.Redis.from_url(url, socket_timeout=2).info("server")
    return str(info.get("redis_version", "?"))


# -- server processes ----------------------------------------------------------------------


class ProcessFailed(RuntimeError):
    """A server exited or never became ready; the message carries the tail of its log."""


@dataclass
class Server:
    """A server under test (gateway or baseline) running as its own process."""

    name: str
    argv: Sequence[str]
    port: int
    env: Mapping[str, str]
    log_dir: Path
    cpus: frozenset[int] | None = None
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.log_dir / f"{self.name}.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                list(self.argv),
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=child_setup(self.cpus),
            )
        finally:
            log.close()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Poll /healthz until it answers 200, the process dies, or the deadline passes."""
        import aiohttp

        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise ProcessFailed(f"{self.name} exited:\n{self.tail()}")
                try:
                    async with http.get(
                        self.url + "/healthz", timeout=aiohttp.ClientTimeout(total=2)
                    ) as response:
                        if response.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    raise ProcessFailed(f"{self.name} not ready in {timeout:.0f}s:\n{self.tail()}")
                await asyncio.sleep(0.1)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGINT (aiohttp's graceful shutdown), then SIGKILL after ``timeout``."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                process.wait(timeout=5)
        self.process = None
        return process.returncode


# -- sampling ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    at: float  # time.monotonic(), comparable with the load generator's clock
    cpu: float  # user + system seconds
    rss: int
    user: float = 0.0  # of which in user space (the process's own code, not the kernel's)
    steal: float = 0.0  # the machine's only: time its CPUs were ready but the hypervisor ran others


class Sampler:
    """CPU time and RSS of some processes (and of the whole machine), every ``interval`` seconds,
    on a thread.

    Windows reported by the load generator (CLOCK_MONOTONIC, the same clock in every process)
    are turned into CPU use without relying on pipe latency. The "machine" entry is the busy time
    of every CPU: what it shows beyond the processes of the benchmark is other load on the box.
    """

    MACHINE = "machine"

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.samples: dict[str, list[Sample]] = {self.MACHINE: []}
        self._procs: dict[str, psutil.Process] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def watch(self, name: str, pid: int) -> None:
        with self._lock:
            self._procs[name] = psutil.Process(pid)
            self.samples[name] = []
        self._take(name)

    def forget(self, name: str) -> None:
        with self._lock:
            self._procs.pop(name, None)

    def _machine(self) -> Sample:
        times = psutil.cpu_times()
        busy = times.user + times.nice + times.system
        busy += getattr(times, "irq", 0.0) + getattr(times, "softirq", 0.0)
        steal = getattr(times, "steal", 0.0)
        return Sample(time.monotonic(), busy + steal, psutil.virtual_memory().used, steal=steal)

    def _take(self, name: str) -> Sample | None:
        if name == self.MACHINE:
            sample = self._machine()
        else:
            with self._lock:
                proc = self._procs.get(name)
            if proc is None:
                return None
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    sample = Sample(
                        time.monotonic(),
                        times.user + times.system,
                        proc.memory_info().rss,
                        times.user,
                    )
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                return None
        with self._lock:
            self.samples.setdefault(name, []).append(sample)
        return sample

    def now(self, name: str) -> Sample | None:
        return self._take(name)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                names = [self.MACHINE, *self._procs]
            for name in names:
                self._take(name)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _between(self, name: str, start: float, end: float) -> tuple[Sample, Sample] | None:
        """The first sample at or after ``start`` and the last at or before ``end``."""
        with self._lock:
            inside = [s for s in self.samples.get(name, ()) if start <= s.at <= end]
        if len(inside) < 2:
            return None
        return inside[0], inside[-1]

    def _percent(
        self, name: str, start: float, end: float, seconds: Callable[[Sample], float]
    ) -> float | None:
        found = self._between(name, start, end)
        if found is None:
            return None
        first, last = found
        return 100.0 * (seconds(last) - seconds(first)) / (last.at - first.at)

    def cpu_percent(self, name: str, start: float, end: float) -> float | None:
        """CPU use in the window, in % of one core (the machine: up to 100 x cores)."""
        return self._percent(name, start, end, lambda sample: sample.cpu)

    def user_percent(self, name: str, start: float, end: float) -> float | None:
        """The user-space part of ``cpu_percent`` (a process's; the rest is the kernel working
        for it: socket reads and writes, ``epoll``)."""
        return self._percent(name, start, end, lambda sample: sample.user)

    def steal_percent(self, start: float, end: float) -> float | None:
        """Time the machine's CPUs were taken by the hypervisor in the window, in % of one core.
        On a shared VM it comes in slices of milliseconds: each one stalls whatever ran on that
        CPU (a server, the load generator, PostgreSQL), which no server can hide from a tail
        latency or from a CPU share measured in one window and compared with another."""
        return self._percent(self.MACHINE, start, end, lambda sample: sample.steal)

    def rss_max(self, name: str, start: float, end: float) -> int | None:
        with self._lock:
            inside = [s.rss for s in self.samples.get(name, ()) if start <= s.at <= end]
        return max(inside) if inside else None


AUTOGROUP = Path("/proc/sys/kernel/sched_autogroup_enabled")


@contextlib.contextmanager
def autogroups_off() -> Iterator[str]:
    """The kernel's session autogroups off for the run, restored after; yields what was done.

    With autogroups on (the kernel's default), the scheduler first shares a core between
    sessions, each as one group of equal weight, and only inside a session by policy and nice.
    PostgreSQL starts every backend in a session of its own, and the servers run in theirs, so
    neither ``as_remote_database`` nor the bench's nice -10 took effect across them: ``perf sched
    timehist`` showed a ``SCHED_IDLE`` backend run 5 ms of a commit on the load generator's core
    while the load generator waited 4 ms to read its pushes, every 50 ms, in both servers that
    store (p99 read 4.3 ms against 1.6 ms at the dashboards' sockets)."""
    try:
        was = AUTOGROUP.read_text().strip()
    except OSError:
        yield "not in this kernel"
        return
    if was == "0":
        yield "off"
        return
    try:
        AUTOGROUP.write_text("0")
    except OSError as exc:
        yield f"left on ({exc.strerror or exc})"
        return
    try:
        yield "off for the run"
    finally:
        with contextlib.suppress(OSError):
            AUTOGROUP.write_text(was)


def as_remote_database(pid: int, cpus: frozenset[int] | None) -> bool:
    """Make a PostgreSQL backend of the run behave as if on a host of its own, as deployed.

    Left to the scheduler, a backend committing a batch ran on the server's core for up to 9 ms
    at a time while the server waited to be woken (``perf sched timehist``), which no server can
    hide. So it is pinned to the load generators' CPUs at ``SCHED_IDLE``: it takes only the time
    they leave, and a waking load generator preempts it at once (given ``autogroups_off``)."""
    try:
        if cpus:
            os.sched_setaffinity(pid, cpus)
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
    except OSError:
        return False
    return True


async def backend_pids(database_url: str) -> list[int]:
    """PIDs of the PostgreSQL backends connected to the benchmark database (if local)."""
    conn = await asyncpg.connect(database_url, timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return [int(row["pid"]) for row in rows if psutil.pid_exists(int(row["pid"]))]


# -- machine -------------------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    import platform

    return platform.processor() or "unknown"


def _version(package: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git(*args: str) -> str:
    try:
        result = subprocess.run(
            ["git", *args],
            cwd=Path(__file__).resolve().parent.parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip()


def machine_info() -> dict[str, Any]:
    """What a reader needs to compare a figure with another machine's."""
    import platform
    import resource

    memory = psutil.virtual_memory()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {
        "cpu_model": _cpu_model(),
        "cpu_count_logical": psutil.cpu_count(logical=True),
        "cpu_count_physical": psutil.cpu_count(logical=False),
        "cpu_affinity": len(os.sched_getaffinity(0)),
        "memory_total_mib": memory.total // (1 << 20),
        "kernel": platform.release(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "loadavg_at_start": os.getloadavg(),
        "nofile_limit": {"soft": soft, "hard": hard},
        "local_port_range": _read("/proc/sys/net/ipv4/ip_local_port_range"),
        "somaxconn": _read("/proc/sys/net/core/somaxconn"),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty_files": len(_git("status", "--porcelain").splitlines()),
        "versions": {
            name: _version(name)
            for name in (
                "gateway",
                "aiohttp",
                "uvloop",
                "orjson",
                "asyncpg",
                "PyJWT",
                "argon2-cffi",
                "redis",
                "psutil",
                "matplotlib",
                "py-spy",
            )
        },
    }


def _read(path: str) -> str:
    try:
        return " ".join(Path(path).read_text().split())
    except OSError:
        return ""


def thread_schedstat(pid: int) -> dict[int, tuple[float, float]]:
    """Per thread of ``pid``: (seconds on a CPU, seconds runnable but waiting for a CPU).

    The second figure is what tells a starved event loop thread from a busy one.
    """
    found: dict[int, tuple[float, float]] = {}
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError):
                running, waiting, _ = (Path(task, "schedstat").read_text().split() + ["0"] * 3)[:3]
                found[int(task.name)] = (int(running) / 1e9, int(waiting) / 1e9)
    return found


def schedstat_delta(
    pid: int,
    before: dict[int, tuple[float, float]],
    after: dict[int, tuple[float, float]],
    seconds: float,
) -> dict[str, Any]:
    """CPU and run-queue wait of the main (event loop) thread and of all other threads, as % of
    the window."""

    def share(tids: list[int], index: int) -> float:
        total = sum(after[t][index] - before.get(t, (0.0, 0.0))[index] for t in tids if t in after)
        return 100.0 * total / seconds if seconds else 0.0

    others = [tid for tid in after if tid != pid]
    return {
        "loop_thread_cpu_percent": share([pid], 0),
        "loop_thread_runqueue_wait_percent": share([pid], 1),
        "other_threads": len(others),
        "other_threads_cpu_percent": share(others, 0),
    }
