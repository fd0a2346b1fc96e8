"""What an operator meets when things go wrong around the gateway, not in it: a PostgreSQL that
is unreachable or refuses at start-up, and similar faults at moments the outage tests do not
cover. Real processes only; every server a test stops is its own."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
import redis.asyncio
from prometheus_client.parser import text_string_to_metric_families

from gateway.cli import EXIT_LOST
from tests.cluster import helpers
from tests.cluster.conftest import Cluster
from tests.cluster.helpers import (
    Peer,
    World,
    call,
    connect,
    device_token,
    eventually,
    login,
    make_world,
    token_status,
)
from tests.support.processes import REPO_ROOT, GatewayProcess
from tests.support.servers import PostgresProcess, RedisProcess, free_port, with_database

pytestmark = pytest.mark.timeout(60)

SECRET = "operator-fault-secret-0123456789-abcdefghij"


async def run_gateway(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``python -m gateway ARGS`` with a clean GATEWAY_* environment: (exit code, out, err)."""
    base = {key: value for key, value in os.environ.items() if not key.startswith("GATEWAY_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", *args,
        cwd=REPO_ROOT, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**base, "GATEWAY_JWT_SECRET": SECRET, **(env or {})},
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 45)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("command", ["serve", "migrate"])
async def test_an_unreachable_postgres_at_start_up_is_one_line(
    command: str, tmp_path: Path
) -> None:
    """The pool opens no connection until it is used: the start-up check must use it, or the
    operator reads ``gateway: Connection refused`` (refused by what?)."""
    port = free_port()
    url = f"postgresql://gw:hunter2@127.0.0.1:{port}/gw"
    code, out, err = await run_gateway(
        command, "--database-url", url, "--port", str(free_port()),
        "--data-dir", str(tmp_path),
    )  # fmt: skip
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(
        f"gateway: configuration error: cannot connect to PostgreSQL at "
        f"postgresql://gw:***@127.0.0.1:{port}/gw: "
    ), lines
    assert "refused" in lines[0] or "failed" in lines[0], lines
    assert "hunter2" not in err + out


@pytest.mark.parametrize("command", ["serve", "migrate"])
async def test_a_postgres_that_refuses_the_database_at_start_up_is_one_line(
    command: str, database_url: str, tmp_path: Path
) -> None:
    """A server that answers but refuses (no such database) was a traceback."""
    url = with_database(database_url, "gateway_no_such_database")
    code, _, err = await run_gateway(
        command, "--database-url", url, "--port", str(free_port()),
        "--data-dir", str(tmp_path),
    )  # fmt: skip
    assert code == 2, err
    assert err.splitlines() == [
        f"gateway: configuration error: cannot connect to PostgreSQL at {url}: "
        'database "gateway_no_such_database" does not exist'
    ], err


# -- PostgreSQL stopped: every kind of request ---------------------------------------------


async def test_every_request_that_needs_postgres_gets_503_while_it_is_down(
    own_cluster: Cluster, own_postgres: PostgresProcess, http: aiohttp.ClientSession
) -> None:
    (gateway,) = await own_cluster.start("a", redis_url=None)
    world = await make_world(http, gateway)
    pair = await login(http, gateway, world.user_email, world.user_password)
    spare = await login(http, gateway, world.user_email, world.user_password)
    device = await connect(
        http, gateway, (await device_token(http, gateway, world))["access_token"], "device"
    )
    watcher = await connect(http, gateway, world.admin, "watcher")
    inserted = await device.ok(
        "notification/insert", deviceId=world.device_id, notification={"notification": "n"}
    )
    await asyncio.to_thread(own_postgres.stop)

    rest = [
        ("POST", "/v1/auth/login", None, {"email": world.user_email, "password": "x"}),
        ("POST", "/v1/auth/token/refresh", None, {"refresh_token": pair["refresh_token"]}),
        ("POST", "/v1/auth/logout", spare["access_token"], None),
        ("POST", "/v1/auth/logout/all", spare["access_token"], None),
        ("POST", "/v1/auth/revoke", world.admin, {"user_id": world.user_id}),
        ("POST", "/v1/auth/token/create", world.admin, {"user_id": world.user_id}),
        ("GET", "/v1/auth/me", world.admin, None),
        ("GET", "/v1/users", world.admin, None),
        ("POST", "/v1/users", world.admin, {"name": "n", "email": "n@example.com",
                                           "password": "password-1", "role": "client"}),
        ("PATCH", f"/v1/users/{world.user_id}", world.admin, {"name": "renamed"}),
        ("PUT", "/v1/devices/other", world.admin, {"name": "o", "networkId": world.network_id}),
        ("GET", f"/v1/devices/{world.device_id}/notifications", world.admin, None),
        ("GET", f"/v1/devices/{world.device_id}/notifications/poll?waitTimeout=0", world.admin,
         None),
        ("GET", "/v1/device-types", world.admin, None),
        ("GET", "/v1/plugins", world.admin, None),
    ]  # fmt: skip
    answers = []
    for method, path, token, body in rest:
        status, payload, headers = await call(http, gateway, method, path, token, body)
        answers.append((method, path, status, payload, headers.get("Retry-After")))
    wrong = [a for a in answers if a[2] != 503 or a[4] != "1"]
    assert not wrong, wrong

    ws = [
        ("token/refresh", {"refreshToken": pair["refresh_token"]}),
        ("notification/list", {"deviceId": world.device_id}),
        ("notification/get", {"deviceId": world.device_id,
                              "notificationId": inserted["notification"]["id"]}),
        ("device/save", {"deviceId": "other", "device": {"name": "o"}}),
        ("user/list", {}),
        ("network/list", {}),
    ]  # fmt: skip
    replies = []
    for action, fields in ws:
        reply = await watcher.request(action, **fields)
        replies.append((action, reply.get("code"), reply.get("error")))
    wrong_ws = [r for r in replies if r[1] != 503]
    assert not wrong_ws, wrong_ws
    # A replay reads PostgreSQL: refused with 503 before any success reply, socket kept.
    replay = await watcher.request(
        "notification/subscribe",
        deviceId=world.device_id,
        timestamp=inserted["notification"]["timestamp"],
    )
    assert (replay["status"], replay.get("code")) == ("error", 503), replay
    assert not watcher.closed.is_set()
    assert "unhandled error" not in gateway.stderr(), gateway.logs(200)


async def test_a_logout_postgres_cannot_record_changes_nothing_and_can_be_sent_again(
    own_cluster: Cluster, own_postgres: PostgresProcess, http: aiohttp.ClientSession
) -> None:
    """A revocation is written before it is published (README, "Faults and what they do"): one
    PostgreSQL cannot record is in force nowhere, so the token keeps working, its socket stays
    open, and the same logout succeeds once PostgreSQL is back. Published first, it would have
    closed the socket and revoked the token in memory, and the retry would get 401 while the
    store never learnt of the logout."""
    (gateway,) = await own_cluster.start("a", redis_url=None)
    world = await make_world(http, gateway)
    pair = await login(http, gateway, world.user_email, world.user_password)
    token = pair["access_token"]
    peer = await connect(http, gateway, token, "user")
    await asyncio.to_thread(own_postgres.stop)

    status, body, headers = await call(http, gateway, "POST", "/v1/auth/logout", token)
    assert (status, headers.get("Retry-After")) == (503, "1"), body
    assert await token_status(http, gateway, token) == 200
    await peer.quiet()
    assert not peer.closed.is_set()

    await asyncio.to_thread(own_postgres.start)

    async def logged_out() -> bool:
        status, _, _ = await call(http, gateway, "POST", "/v1/auth/logout", token)
        assert status in (204, 503), status
        return status == 204

    await eventually(logged_out, timeout=15, every=0.2)
    assert await peer.wait_closed() == 4003
    assert await token_status(http, gateway, token) == 401


# -- SIGTERM while PostgreSQL is down ----------------------------------------------------


async def acknowledge_while_down(
    own_cluster: Cluster, own_postgres: PostgresProcess, http: aiohttp.ClientSession, count: int
) -> GatewayProcess:
    """A gateway that acknowledged ``count`` notifications it could not write."""
    (gateway,) = await own_cluster.start("a", redis_url=None)
    world = await make_world(http, gateway)
    device = await connect(
        http, gateway, (await device_token(http, gateway, world))["access_token"], "device"
    )
    await device.ok(  # the first block of ids is taken while PostgreSQL is up
        "notification/insert", deviceId=world.device_id, notification={"notification": "up"}
    )
    await eventually(lambda: _stored(own_postgres.url, 1))
    await asyncio.to_thread(own_postgres.stop)
    for n in range(count):
        await device.ok(
            "notification/insert", deviceId=world.device_id, notification={"notification": f"n{n}"}
        )
    await device.close()
    return gateway


async def _stored(url: str, count: int) -> bool:
    conn = await asyncpg.connect(url)
    try:
        return bool(await conn.fetchval("SELECT count(*) FROM notifications") == count)
    finally:
        await conn.close()


async def wait_for_line(gateway: GatewayProcess, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in gateway.stderr():
        assert time.monotonic() < deadline, f"no {text!r} in the log\n{gateway.logs()}"
        await asyncio.sleep(0.02)


LOST = (
    "shutdown: 7 notifications and 0 commands were acknowledged but could not be written "
    "within 5 s: lost"
)


async def test_sigterm_while_postgres_is_down_logs_exactly_what_was_lost(
    own_cluster: Cluster, own_postgres: PostgresProcess, http: aiohttp.ClientSession
) -> None:
    gateway = await acknowledge_while_down(own_cluster, own_postgres, http, 7)
    assert gateway.process is not None
    gateway.process.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(gateway.process.wait, 20)
    log = gateway.stderr()
    assert LOST in log, gateway.logs()
    assert "Traceback" not in log.split(LOST)[1], gateway.logs()
    assert code == EXIT_LOST, gateway.logs()  # the log says how much; the status that it was


async def test_a_second_sigterm_does_not_cut_the_last_writes_short(
    own_cluster: Cluster, own_postgres: PostgresProcess, http: aiohttp.ClientSession
) -> None:
    """An impatient operator (or a supervisor) signals again while the instance still tries to
    write what it acknowledged: it still gets its bounded try and says what it lost."""
    gateway = await acknowledge_while_down(own_cluster, own_postgres, http, 7)
    assert gateway.process is not None
    gateway.process.send_signal(signal.SIGTERM)
    await wait_for_line(gateway, "shutdown: writing pending messages failed, retrying")
    gateway.process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(gateway.process.wait, 20) == EXIT_LOST
    log = gateway.stderr()
    assert "already stopping" in log, gateway.logs()
    assert LOST in log, gateway.logs()
    assert "Traceback" not in log.split(LOST)[1], gateway.logs()


# -- --workers N: a worker that dies ----------------------------------------------------------


def worker_pids(parent: int) -> list[int]:
    """The parent's worker processes (multiprocessing's spawn children)."""
    workers = []
    for pid in Path(f"/proc/{parent}/task/{parent}/children").read_text().split():
        try:
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                workers.append(int(pid))
        except OSError:  # it ended between the listing and the read
            continue
    return workers


def live_in_group(group: int) -> list[int]:
    """Processes of a process group that still run (a zombie left to a PID 1 that does not reap
    runs nothing)."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # pid (comm) state ppid pgrp ...: split after the command, which may hold spaces
            state, _ppid, pgrp = stat.read_text().rpartition(")")[2].split()[:3]
        except OSError:
            continue
        if int(pgrp) == group and state != "Z":
            live.append(int(stat.parent.name))
    return live


async def test_a_worker_that_dies_is_logged_and_started_again(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    """A worker killed under --workers 2 (OOM killer, a crash) was never noticed: the parent
    waited on, the port served by the one left, nothing in the log."""
    gateway = cluster.prepare("w", args=["--workers", "2"])
    workers = [f"{gateway.instance_id}-w0", f"{gateway.instance_id}-w1"]
    gateway.start()
    started = time.monotonic()
    await gateway.wait_ready(instances=workers)
    assert gateway.process is not None
    pids = worker_pids(gateway.process.pid)
    assert len(pids) == 2, pids
    # Only a worker that ran a while is started again (one failing at start-up is not looped).
    await asyncio.sleep(max(0.0, started + 6.0 - time.monotonic()))
    os.kill(pids[0], signal.SIGKILL)

    await wait_for_line(gateway, f"(pid {pids[0]}) was killed by signal 9; starting it again")
    # The line is written before the new worker is spawned, and a spawned child shows
    # spawn_main in its command line only once it has exec'd: wait for it, bounded.
    deadline = time.monotonic() + 30
    while not (new := [pid for pid in worker_pids(gateway.process.pid) if pid not in pids]):
        assert time.monotonic() < deadline, gateway.logs()
        await asyncio.sleep(0.05)
    assert len(new) == 1, new
    await gateway.wait_ready(instances=workers)
    assert gateway.returncode is None
    assert gateway.stop() == 0, gateway.logs()


async def test_a_worker_that_fails_at_start_up_stops_the_others_and_the_parent_exits_2(
    cluster: Cluster,
) -> None:
    """Worker 1 of --workers 2 could not bind its metrics port: it was logged "not started
    again" and worker 0 kept serving alone, the parent alive, so a supervisor saw nothing."""
    with _taken_after_a_free_port() as metrics_port:
        gateway = cluster.prepare("w", args=["--workers", "2", "--metrics-port", str(metrics_port)])
        gateway.start()
        deadline = time.monotonic() + 30
        while gateway.returncode is None:
            assert time.monotonic() < deadline, gateway.logs()
            await asyncio.sleep(0.05)
    assert gateway.returncode == 2, gateway.logs()
    log = gateway.stderr()
    assert (
        f"gateway: worker 1: configuration error: GATEWAY_METRICS_PORT: cannot listen on "
        f"127.0.0.1:{metrics_port + 1}: "
    ) in log, log
    assert "Traceback" not in log, log
    assert "worker 1 (pid " in log and "; stopping the others" in log, log
    assert gateway.process is not None
    # The workers are joined before the parent exits; multiprocessing's resource tracker, the
    # one other process of the group, exits when it reads the parent's end of its pipe close,
    # a moment later (looked at once, it was still there about 1 run in 16).
    deadline = time.monotonic() + 5
    while live := live_in_group(gateway.process.pid):
        assert time.monotonic() < deadline, (live, gateway.logs())
        await asyncio.sleep(0.05)


@contextlib.contextmanager
def _taken_after_a_free_port() -> Iterator[int]:
    """A free port whose next one is held by a listener here (both below the ephemeral range,
    where no connection of a neighbour's can take the free one meanwhile)."""
    for _ in range(100):
        port = free_port()
        with socket.socket() as taken:
            try:
                taken.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            taken.listen()
            yield port
            return
    raise AssertionError("no free port followed by a bindable one")


# -- a port that cannot be bound ----------------------------------------------------------


async def test_a_port_in_use_is_one_line_and_never_announced_as_listening(
    database_url: str, tmp_path: Path
) -> None:
    """ "listening on" was printed (with the log-in hint) before the port was bound: a port
    taken by another process showed it, then the error."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = await run_gateway(
            "serve", "--database-url", database_url, "--port", str(port),
            "--data-dir", str(tmp_path), "--log-level", "ERROR",
        )  # fmt: skip
    assert code == 1, err
    assert out == "", out
    assert err.splitlines() == [
        f"gateway: error while attempting to bind on address ('127.0.0.1', {port}): "
        "address already in use"
    ], err


# -- PostgreSQL that does not answer (cut off, hung) -------------------------------------------


def postmaster_pid(server: PostgresProcess) -> int:
    return int((server.data / "postmaster.pid").read_text().split()[0])


async def test_a_postgres_that_accepts_no_connection_is_a_prompt_503(
    own_cluster: Cluster, own_postgres: PostgresProcess, http: aiohttp.ClientSession
) -> None:
    """PostgreSQL cut off rather than stopped: nothing refuses, a new connection just never
    completes (here: its postmaster paused, after the gateway's pooled connections were ended).
    A request then waited asyncpg's default connect timeout, 60 s, for its 503; and with more
    requests than the pool has connections (10), each wave of 10 waited its 5 s in turn."""
    (gateway,) = await own_cluster.start("a", redis_url=None)
    world = await make_world(http, gateway)
    postmaster = await cut_off(own_postgres)
    try:
        started = time.monotonic()
        answers = await asyncio.gather(
            *(call(http, gateway, "GET", "/v1/networks", world.admin) for _ in range(35))
        )
        took = time.monotonic() - started
    finally:
        os.kill(postmaster, signal.SIGCONT)
    for status, body, headers in answers:
        assert (status, headers.get("Retry-After")) == (503, "1"), (status, body)
        assert body["message"] == "Database unavailable; retry later"
    assert took < 10, f"{took:.1f} s for a 503"


# -- /metrics through outages ------------------------------------------------------------------


async def scrape(http: aiohttp.ClientSession, gateway: GatewayProcess) -> dict[str, float]:
    """Unlabelled samples of /metrics (what the outage counters and levels are)."""
    async with http.get(gateway.url + "/metrics") as response:
        assert response.status == 200
        text = await response.text()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }


async def device_with_one_stored(
    http: aiohttp.ClientSession, gateway: GatewayProcess, database_url: str
) -> tuple[World, Peer]:
    """A world and its device's socket, once a first notification of it is stored."""
    world = await make_world(http, gateway)
    device = await connect(
        http, gateway, (await device_token(http, gateway, world))["access_token"], "device"
    )
    await device.ok(
        "notification/insert", deviceId=world.device_id, notification={"notification": "up"}
    )
    await eventually(lambda: _stored(database_url, 1))
    return world, device


async def test_metrics_tell_the_truth_through_a_postgres_and_a_redis_outage(
    own_cluster: Cluster,
    own_postgres: PostgresProcess,
    own_redis: RedisProcess,
    http: aiohttp.ClientSession,
) -> None:
    (gateway,) = await own_cluster.start("a", redis_url=own_redis.url)
    world, device = await device_with_one_stored(http, gateway, own_postgres.url)
    start = await scrape(http, gateway)
    assert (start["gateway_bus_connected"], start["gateway_persist_pending"]) == (1, 0)
    assert start["gateway_persist_written_total"] == 1
    assert (start["gateway_persist_failed_total"], start["gateway_bus_reconnects_total"]) == (0, 0)

    # PostgreSQL down: what waits is counted, and so are the failed attempts to write it.
    await asyncio.to_thread(own_postgres.stop)
    for n in range(5):
        await device.ok(
            "notification/insert", deviceId=world.device_id, notification={"notification": f"{n}"}
        )

    async def failing() -> bool:
        now = await scrape(http, gateway)
        return now["gateway_persist_pending"] == 5 and now["gateway_persist_failed_total"] >= 1

    await eventually(failing)
    await asyncio.to_thread(own_postgres.start)

    async def written() -> bool:
        now = await scrape(http, gateway)
        return (now["gateway_persist_pending"], now["gateway_persist_written_total"]) == (0, 6)

    await eventually(written, timeout=10)
    assert await _stored(own_postgres.url, 6)

    # Redis down, then back: the bus level follows, the reconnect is counted once.
    own_redis.stop()

    async def bus(connected: float, reconnects: float) -> bool:
        now = await scrape(http, gateway)
        return (now["gateway_bus_connected"], now["gateway_bus_reconnects_total"]) == (
            connected,
            reconnects,
        )

    await eventually(lambda: bus(0, 0), timeout=10)
    own_redis.start()
    await eventually(lambda: bus(1, 1), timeout=15)
    assert (await gateway.readyz(http))[0] == 200


async def cut_off(server: PostgresProcess) -> int:
    """Pause the postmaster, so that new connections hang, then end every client connection
    (through one opened before). In the other order a connection the gateway opened in
    between (its writer reconnecting) outlived the cut and took a block of ids."""
    conn = await asyncpg.connect(server.url)
    postmaster = postmaster_pid(server)
    os.kill(postmaster, signal.SIGSTOP)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
    finally:
        await conn.close()
    return postmaster


@pytest.mark.timeout(120)
async def test_out_of_ids_with_postgres_cut_off_every_insert_is_refused_promptly(
    own_cluster: Cluster,
    own_postgres: PostgresProcess,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Numbering needs a new block and PostgreSQL does not answer: concurrent inserts queued
    behind one block request each tried again after it failed, one timeout after another."""
    (gateway,) = await own_cluster.start(
        "a", redis_url=None, extra={"GATEWAY_WS_RATE": "5000", "GATEWAY_WS_BURST": "5000"}
    )
    world = await make_world(http, gateway)
    token = (await device_token(http, gateway, world))["access_token"]
    devices = [await connect(http, gateway, token, f"device{n}") for n in range(6)]
    await devices[0].ok(  # the first block of ids is taken while PostgreSQL answers
        "notification/insert", deviceId=world.device_id, notification={"notification": "up"}
    )
    monkeypatch.setattr(helpers, "WAIT", 60.0)  # replies may now take a connect timeout
    postmaster = await cut_off(own_postgres)
    try:
        acknowledged = 1
        while True:  # the ids left in the current block (and its prefetch, which fails)
            replies = await asyncio.gather(
                *(
                    devices[0].request(
                        "notification/insert",
                        deviceId=world.device_id,
                        notification={"notification": "n"},
                    )
                    for _ in range(100)
                )
            )
            acknowledged += sum(reply["status"] == "success" for reply in replies)
            if any(reply["status"] != "success" for reply in replies):
                break
            assert acknowledged <= 1000
        started = time.monotonic()
        replies = await asyncio.gather(
            *(
                device.request(
                    "notification/insert",
                    deviceId=world.device_id,
                    notification={"notification": "late"},
                )
                for device in devices
            )
        )
        took = time.monotonic() - started
    finally:
        os.kill(postmaster, signal.SIGCONT)
    assert {(reply["status"], reply.get("code")) for reply in replies} == {("error", 503)}
    # One shared block request (a prefetch still running, then one more try): at most two
    # connect timeouts, against six in a row before.
    assert took < 12, f"{took:.1f} s for six refusals"


# -- PostgreSQL that answers but refuses writes (a failover onto a read-only server) -----------


async def set_read_only(server: PostgresProcess, on: bool) -> None:
    """``default_transaction_read_only`` on the test-owned server, reloaded into every session
    (what a client sees of a primary demoted to a standby, or a server in read-only upkeep)."""
    conn = await asyncpg.connect(server.url)
    try:
        value = "on" if on else "off"
        await conn.execute(f"ALTER SYSTEM SET default_transaction_read_only = {value}")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


async def test_a_read_only_postgres_loses_no_acknowledged_message(
    own_cluster: Cluster, own_postgres: PostgresProcess, http: aiohttp.ClientSession
) -> None:
    """Writes refused with SQLSTATE 25006 (read-only transaction) were taken for bad rows: each
    acknowledged item went to dead_letters, which refused it too, and was dropped ("lost")."""
    (gateway,) = await own_cluster.start("a", redis_url=None)
    world, device = await device_with_one_stored(http, gateway, own_postgres.url)
    await set_read_only(own_postgres, True)
    acked = []
    for n in range(5):
        reply = await device.ok(
            "notification/insert", deviceId=world.device_id, notification={"notification": f"{n}"}
        )
        acked.append(reply["notification"]["id"])

    async def failing() -> bool:
        return (await scrape(http, gateway))["gateway_persist_failed_total"] >= 2

    await eventually(failing)
    # A REST write is refused as an outage, not a 500.
    status, body, headers = await call(
        http, gateway, "POST", "/v1/networks", world.admin, {"name": "more"}
    )
    assert (status, headers.get("Retry-After")) == (503, "1"), body
    # /readyz said 200 once its cached answer expired (its probe only read): a balancer kept
    # sending writes here. It stays 503 across several probes (one per 0.5 s at most).
    until = time.monotonic() + 1.6
    while time.monotonic() < until:
        assert await gateway.readyz(http) == (
            503, {"database": False, "bus": True, "instance": gateway.instance_id}
        )  # fmt: skip
        await asyncio.sleep(0.1)

    await set_read_only(own_postgres, False)
    await eventually(lambda: _stored(own_postgres.url, 6), timeout=10)

    async def ready() -> bool:
        return (await gateway.readyz(http))[0] == 200

    await eventually(ready)
    log = gateway.stderr()
    assert "could not be stored" not in log, gateway.logs()
    # One outage, logged once each way (the probe no longer says "reachable" in between).
    assert log.count("PostgreSQL unavailable (ReadOnlySQLTransactionError") == 1, gateway.logs()
    assert log.count("PostgreSQL reachable again") == 1, gateway.logs()


# -- Redis that answers slowly ---------------------------------------------------------------


async def test_a_logout_while_redis_is_paused_answers_within_the_revoke_wait(
    cluster: Cluster, own_redis: RedisProcess, http: aiohttp.ClientSession
) -> None:
    """The revocation is in PostgreSQL before it is published; a Redis that does not answer
    (paused, overloaded) held the logout for as long as the PUBLISH hung (up to the 5 s socket
    timeout), not the documented GATEWAY_REVOKE_WAIT."""
    a, b = await cluster.start(
        "a", "b", redis_url=own_redis.url, extra={"GATEWAY_REVOKE_WAIT": "300ms"}
    )
    world = await make_world(http, a)
    victim = await login(http, a, world.user_email, world.user_password)
    peer = await connect(http, b, victim["access_token"], "victim@B")
    paused = redis.asyncio.Redis.from_url(own_redis.url)
    try:
        await paused.client_pause(4000, all=True)
        started = time.monotonic()
        status, _, headers = await call(http, a, "POST", "/v1/auth/logout", victim["access_token"])
        took = time.monotonic() - started
    finally:
        await paused.client_unpause()
        await paused.aclose()
    assert status == 204
    assert took < 2.0, f"the logout took {took:.1f} s"
    assert headers["X-Sessions-Closed"] == "0"  # only the origin reported in time
    # The revocation still reaches B once Redis answers (or by reconciliation).
    assert await peer.wait_closed(timeout=10) == 4003


async def test_a_redis_that_refuses_the_password_is_named_as_such(
    cluster: Cluster, own_redis: RedisProcess
) -> None:
    """A Redis that answers but refuses the credentials was logged as "unreachable", without
    the cause, and every later attempt in silence: the operator looked at the network."""
    admin = redis.asyncio.Redis.from_url(own_redis.url)
    try:
        await admin.config_set("requirepass", "right-password")
    finally:
        await admin.aclose()
    url = f"redis://:wrong-password@127.0.0.1:{own_redis.port}/0"
    gateway = cluster.prepare("a", redis_url=url)
    gateway.start()
    await wait_for_line(gateway, "running on local fan-out, retrying", timeout=20)
    (line,) = [line for line in gateway.stderr().splitlines() if "is unreachable" in line]
    assert f"Redis at redis://:***@127.0.0.1:{own_redis.port}/0 is unreachable (" in line, line
    assert "AuthenticationError" in line, line
    assert "wrong-password" not in gateway.stderr()
