"""The load generator: its own process, driven by a JSON spec, reporting JSON lines on stdout.

Run: ``python -m bench.loadgen SPEC.json``. Modes:

- ``fanout``: D publishers send ``notification/insert`` (at fixed rates, then as fast as acks
  allow), S subscribers receive the pushes; counts sent/acked/delivered and end-to-end latency.
- ``hold``: N authenticated idle sessions, held until the orchestrator writes a line on stdin.
- ``revoke``: sessions over two instances; logout one by one on the other instance, then
  ``logout/all``; time from the request to the close frame at the client.
- ``login``: concurrent ``POST /v1/auth/login`` for a while.

Every phase is bounded in time; windows are reported on ``time.monotonic()`` (CLOCK_MONOTONIC,
shared by every process) so the orchestrator can match them with its CPU samples.
Latencies are on CLOCK_REALTIME (``time.time_ns()``), the clock of the kernel's receive
timestamps that the dashboards' sockets carry (``wsclient.StampedTransport``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sys
import time
import uuid
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from bench import raise_nofile_limit
from bench.wsclient import WSClient, connect, frame

if TYPE_CHECKING:
    import aiohttp

BACKLOG_LIMIT = 1 << 20
"""A publisher whose unsent bytes exceed this skips messages (reported): the load generator
never queues without bound when the server falls behind."""

_RID = 1_000_000_000  # requestId = phase * _RID + n


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(orjson.dumps({"event": event, "wall": time.time(), **fields}).decode() + "\n")
    sys.stdout.flush()


def percentiles(values: Sequence[float], scale: float = 1.0) -> dict[str, float | int | None]:
    """p50/p90/p99/p99.9/max/mean of ``values`` multiplied by ``scale``."""
    if not values:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "p999": None, "max": None}
    ordered = sorted(values)
    n = len(ordered)

    def at(q: float) -> float:
        return ordered[min(n - 1, int(q * n))] * scale

    return {
        "n": n,
        "p50": at(0.50),
        "p90": at(0.90),
        "p99": at(0.99),
        "p999": at(0.999),
        "max": ordered[-1] * scale,
        "mean": sum(ordered) / n * scale,
    }


class OwnCollections:
    """The load generator's own garbage collections while it times something: a pause here is
    the harness's, not the server's, and lands in every latency it spans."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float, float]] = []
        """(generation, start on ``perf_counter``, seconds)."""
        self._started = 0.0

    def __enter__(self) -> OwnCollections:
        gc.callbacks.append(self._on_gc)
        return self

    def __exit__(self, *_exc: object) -> None:
        gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            started = self._started
            self.pauses.append((int(info["generation"]), started, time.perf_counter() - started))

    def during(self, start: float, end: float) -> float:
        """Seconds of collection between two ``perf_counter`` readings."""
        return sum(
            min(end, at + length) - max(start, at)
            for _, at, length in self.pauses
            if at < end and at + length > start
        )

    def summary(self) -> dict[str, Any]:
        return {
            f"gen{generation}": {
                "count": len(lengths := [p[2] for p in self.pauses if p[0] == generation]),
                "max_ms": max(lengths, default=0.0) * 1000,
                "total_ms": sum(lengths) * 1000,
            }
            for generation in (0, 1, 2)
        }


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


# -- tokens --------------------------------------------------------------------------------


def make_tokens(sign: dict[str, Any], user_id: int, role: str, count: int) -> list[str]:
    """Access tokens signed with the instance's secret through the gateway's own codec, each
    with its own sid and jti: what /v1/auth/token/create returns, without 10k database trips."""
    from gateway.auth.permissions import ROLES
    from gateway.auth.tokens import ACCESS, KeySet, TokenCodec
    from gateway.config import Settings
    from gateway.types import Scope

    codec = TokenCodec(KeySet.from_settings(Settings(jwt_secret=sign["secret"])), "gateway", 10.0)
    return [
        codec.issue(
            typ=ACCESS,
            user_id=user_id,
            role=role,
            sid=str(uuid.uuid4()),
            actions=ROLES[role],
            scope=Scope(),
            ttl=float(sign.get("ttl", 3600)),
        ).token
        for _ in range(count)
    ]


async def open_sessions(
    host: str,
    port: int,
    tokens: Sequence[str | None],
    concurrency: int,
    sources: Sequence[str | None] | None = None,
    stamped: bool = False,
) -> tuple[list[WSClient | None], list[str]]:
    """Connect and authenticate one session per token, ``concurrency`` at a time (the listen
    backlog is small), the i-th from ``sources[i]`` if given; failures are returned, not
    raised."""
    limit = asyncio.Semaphore(concurrency)
    errors: list[str] = []
    froms = sources if sources is not None else [None] * len(tokens)

    async def one(token: str | None, source: str | None) -> WSClient | None:
        async with limit:
            try:
                client = await connect(host, port, source=source, stamped=stamped)
                if token is not None:
                    reply = await client.request(
                        {"action": "authenticate", "requestId": 1, "token": token}
                    )
                    if reply.get("status") != "success":
                        errors.append(str(reply.get("error")))
                        client.close()
                        return None
                return client
            except (OSError, TimeoutError, ConnectionError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                return None

    clients = await asyncio.gather(
        *(one(token, source) for token, source in zip(tokens, froms, strict=True))
    )
    return list(clients), errors


async def close_all(clients: Sequence[WSClient | None], timeout: float = 10.0) -> None:
    live = [c for c in clients if c is not None and not c.closed.done()]
    for client in live:
        client.close()
    if live:
        await asyncio.wait([c.closed for c in live], timeout=timeout)
    for client in live:
        if client.transport is not None:
            client.transport.abort()


# -- fan-out -------------------------------------------------------------------------------


@dataclass
class PhaseStats:
    label: str
    mode: str
    rate: float  # offered deliveries/s (0 for "max")
    publish_rate: float
    sent: int = 0
    skipped: int = 0
    acked: int = 0
    errors: int = 0
    delivered: int = 0
    warm_ns: int = 0
    latencies: array = field(default_factory=lambda: array("q"))  # type: ignore[type-arg]
    socket_latencies: array = field(default_factory=lambda: array("q"))  # type: ignore[type-arg]
    error_samples: list[str] = field(default_factory=list)


class Fanout:
    """Publishers and subscribers of one topology, run through a list of phases."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.host: str = spec["host"]
        self.port: int = spec["port"]
        self.devices: list[str] = spec["devices"]
        self.topology: str = spec["topology"]
        self.fanout = 1 if self.topology == "1:1" else int(spec["subscribers"])
        self.window = int(spec.get("window", 16))
        self.publishers: list[WSClient] = []
        self.subscribers: list[WSClient] = []
        self.phases: list[PhaseStats] = []
        self.current = -1
        self.active = False
        self.prefixes: list[bytes] = []
        self.counter = 0
        self.credit: list[int] = []

    async def setup(self) -> dict[str, Any]:
        token = self.spec.get("token")
        subscribers = len(self.devices) if self.topology == "1:1" else self.fanout
        started = time.monotonic()
        # Dashboards may sit on another instance than the devices (the cluster scenario).
        elsewhere = int(self.spec.get("subscriber_port") or self.port)
        publishers, errors = await open_sessions(
            self.host, self.port, [token] * len(self.devices), 50
        )
        subscribing, more = await open_sessions(
            self.host, elsewhere, [token] * subscribers, 50, stamped=True
        )
        errors += more
        clients = publishers + subscribing
        if errors or any(c is None for c in clients):
            raise RuntimeError(f"could not open sessions: {errors[:3]}")
        live = [c for c in clients if c is not None]
        self.publishers = live[: len(self.devices)]
        self.subscribers = live[len(self.devices) :]
        for device_id, client in zip(self.devices, self.publishers, strict=True):
            reply = await client.request(
                {
                    "action": "device/save",
                    "requestId": 2,
                    "deviceId": device_id,
                    "device": {"name": device_id, "networkId": self.spec["network_id"]},
                }
            )
            if reply.get("status") != "success":
                raise RuntimeError(f"device/save failed: {reply}")
        for index, client in enumerate(self.subscribers):
            request: dict[str, Any] = {"action": "notification/subscribe", "requestId": 3}
            if self.topology == "1:1":
                request["deviceId"] = self.devices[index]
            else:
                request["networkIds"] = [self.spec["network_id"]]
            reply = await client.request(request)
            if reply.get("status") != "success":
                raise RuntimeError(f"subscribe failed: {reply}")
            client.on_frame = self._push_handler(client)
        self.credit = [0] * len(self.publishers)
        for index, client in enumerate(self.publishers):
            client.on_frame = self._ack_handler(index)
            client.after_read = self._refill_handler(index)
        return {
            "publishers": len(self.publishers),
            "subscribers": len(self.subscribers),
            "setup_seconds": time.monotonic() - started,
        }

    # -- hot path --------------------------------------------------------------------------

    def _push_handler(self, client: WSClient) -> Any:
        """Latency of each push twice: to when this process read it, and to when the kernel
        queued it on the dashboard's socket (the read time less this process's own delays;
        on a shared core those include the database's turns, which are not the server's)."""

        def on_push(payload: bytes) -> None:
            now = time.time_ns()
            p_at = payload.find(b'"p":')
            if p_at < 0:
                return
            comma = payload.find(b",", p_at)
            end = payload.find(b"}", comma)
            phase = self.phases[int(payload[p_at + 4 : comma])]
            phase.delivered += 1
            sent_ns = int(payload[comma + 5 : end])
            if sent_ns >= phase.warm_ns:
                phase.latencies.append(now - sent_ns)
                if client.received_ns:
                    phase.socket_latencies.append(client.received_ns - sent_ns)

        return on_push

    def _ack_handler(self, index: int) -> Any:
        def on_ack(payload: bytes) -> None:
            at = payload.find(b'"requestId":')
            if at < 0:
                return
            end = at + 12
            while payload[end] in b"0123456789":
                end += 1
            phase_index = int(payload[at + 12 : end]) // _RID
            phase = self.phases[phase_index]
            if b'"status":"error"' in payload:
                phase.errors += 1
                if len(phase.error_samples) < 3:
                    phase.error_samples.append(payload[:300].decode(errors="replace"))
            else:
                phase.acked += 1
            if self.active and phase_index == self.current and phase.mode == "max":
                self.credit[index] += 1

        return on_ack

    def _refill_handler(self, index: int) -> Any:
        def refill() -> None:
            credit = self.credit[index]
            if credit and self.active:
                self.credit[index] = 0
                self._send(index, credit)

        return refill

    def _message(self, index: int, sent_ns: int) -> bytes:
        self.counter += 1
        return frame(
            self.prefixes[index]
            + str(sent_ns).encode()
            + b'}},"requestId":'
            + str(self.current * _RID + self.counter).encode()
            + b"}"
        )

    def _send(self, index: int, count: int) -> None:
        phase = self.phases[self.current]
        client = self.publishers[index]
        if client.backlog() > BACKLOG_LIMIT:
            phase.skipped += count
            return
        now = time.time_ns()
        client.write(b"".join([self._message(index, now) for _ in range(count)]))
        phase.sent += count

    # -- phases ----------------------------------------------------------------------------

    def _start_phase(self, label: str, mode: str, rate: float, warmup: float) -> PhaseStats:
        publish_rate = rate / self.fanout if mode == "rate" else 0.0
        phase = PhaseStats(label=label, mode=mode, rate=rate, publish_rate=publish_rate)
        self.phases.append(phase)
        self.current = len(self.phases) - 1
        phase.warm_ns = time.time_ns() + int(warmup * 1e9)
        self.prefixes = [
            b'{"action":"notification/insert","deviceId":"'
            + device.encode()
            + b'","notification":{"notification":"'
            + label.encode()
            + b'","parameters":{"p":'
            + str(self.current).encode()
            + b',"t":'
            for device in self.devices
        ]
        return phase

    async def run_rate(
        self, label: str, rate: float, duration: float, warmup: float
    ) -> dict[str, Any]:
        phase = self._start_phase(label, "rate", rate, warmup)
        publishers = len(self.publishers)
        per_second = phase.publish_rate
        self.active = True
        started = time.perf_counter()
        cpu_start, mono_start = cpu_seconds(), time.monotonic()
        scheduled = 0
        turn = 0
        measured_from = mono_start + warmup
        while True:
            now = time.perf_counter()
            if now - started >= duration:
                break
            due = int((now - started) * per_second) - scheduled
            if due > 0:
                scheduled += due
                batches: dict[int, int] = {}
                for _ in range(due):
                    index = turn % publishers
                    turn += 1
                    batches[index] = batches.get(index, 0) + 1
                for index, count in batches.items():
                    self._send(index, count)
            await asyncio.sleep(0.001)
        self.active = False
        mono_end = time.monotonic()
        cpu_used = cpu_seconds() - cpu_start
        drained = await self._drain(phase)
        return self._phase_result(
            phase,
            window=(measured_from, mono_end),
            seconds=mono_end - mono_start,
            loadgen_cpu=100.0 * cpu_used / (mono_end - mono_start),
            drained=drained,
            delivered_per_s=None,
        )

    async def run_max(self, label: str, duration: float, warmup: float) -> dict[str, Any]:
        phase = self._start_phase(label, "max", 0.0, warmup)
        self.active = True
        for index in range(len(self.publishers)):
            self._send(index, self.window)
        await asyncio.sleep(warmup)
        cpu_start, mono_start = cpu_seconds(), time.monotonic()
        delivered_start, sent_start, acked_start = phase.delivered, phase.sent, phase.acked
        await asyncio.sleep(duration)
        delivered_end, sent_end, acked_end = phase.delivered, phase.sent, phase.acked
        mono_end = time.monotonic()
        cpu_used = cpu_seconds() - cpu_start
        self.active = False
        seconds = mono_end - mono_start
        drained = await self._drain(phase)
        result = self._phase_result(
            phase,
            window=(mono_start, mono_end),
            seconds=seconds,
            loadgen_cpu=100.0 * cpu_used / seconds,
            drained=drained,
            delivered_per_s=(delivered_end - delivered_start) / seconds,
        )
        result["sent_per_s"] = (sent_end - sent_start) / seconds
        result["acked_per_s"] = (acked_end - acked_start) / seconds
        return result

    async def _drain(self, phase: PhaseStats) -> bool:
        """Wait (bounded) for every ack and every expected delivery of the phase."""
        deadline = time.monotonic() + float(self.spec.get("drain_timeout", 10.0))
        while time.monotonic() < deadline:
            expected = (phase.sent - phase.errors) * self.fanout
            if phase.acked + phase.errors >= phase.sent and phase.delivered >= expected:
                return True
            await asyncio.sleep(0.01)
        return False

    def _phase_result(
        self,
        phase: PhaseStats,
        *,
        window: tuple[float, float],
        seconds: float,
        loadgen_cpu: float,
        drained: bool,
        delivered_per_s: float | None,
    ) -> dict[str, Any]:
        expected = (phase.sent - phase.errors) * self.fanout
        return {
            "label": phase.label,
            "mode": phase.mode,
            "offered_per_s": phase.rate,
            "publish_rate": phase.publish_rate,
            "fanout": self.fanout,
            "seconds": seconds,
            "window": window,
            "sent": phase.sent,
            "sent_per_s": phase.sent / seconds if phase.mode == "rate" else None,
            "skipped": phase.skipped,
            "acked": phase.acked,
            "errors": phase.errors,
            "error_samples": phase.error_samples,
            "delivered": phase.delivered,
            "expected": expected,
            "lost": expected - phase.delivered,
            "delivered_per_s": delivered_per_s
            if delivered_per_s is not None
            else phase.delivered / seconds,
            "drained": drained,
            "latency_ms": percentiles(phase.latencies, 1e-6),
            "socket_latency_ms": percentiles(phase.socket_latencies, 1e-6),
            "loadgen_cpu_percent": loadgen_cpu,
        }

    async def close(self) -> None:
        await close_all([*self.publishers, *self.subscribers])


async def run_fanout(spec: dict[str, Any]) -> None:
    run = Fanout(spec)
    try:
        setup = await run.setup()
        emit("ready", **setup)
        results = []
        for phase in spec["phases"]:
            # A stepped run waits for the orchestrator's go-ahead before each phase: it
            # interleaves servers phase by phase.
            if (
                spec.get("stepped")
                and not (await _stdin_line(float(spec.get("step_timeout", 300)))).strip()
            ):
                raise RuntimeError("no go-ahead from the orchestrator")
            await asyncio.sleep(float(spec.get("pause", 0.5)))
            if phase["mode"] == "rate":
                result = await run.run_rate(
                    phase["label"], float(phase["rate"]), phase["duration"], phase["warmup"]
                )
            else:
                result = await run.run_max(phase["label"], phase["duration"], phase["warmup"])
            emit("phase", **result)
            results.append(result)
        emit("done", setup=setup, phases=results)
    finally:
        await run.close()


# -- idle sessions -------------------------------------------------------------------------


async def _stdin_line(timeout: float) -> str:
    loop = asyncio.get_running_loop()
    try:
        return await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), timeout)
    except TimeoutError:
        return ""


def source_addresses(count: int, per_source: int) -> list[str | None]:
    """127.0.0.2, .3, ... ``per_source`` sessions each: every loopback address has its own
    ephemeral ports, so the client side never runs out of them before the server's file limit."""
    return [f"127.0.0.{2 + index // per_source}" for index in range(count)]


async def run_hold(spec: dict[str, Any]) -> None:
    """Open sessions up to each of ``steps`` (default: ``count`` at once); after each step
    report and wait for a line on stdin: ``next`` continues, anything else releases."""
    count = int(spec["count"])
    steps = sorted({min(int(n), count) for n in spec.get("steps") or []} | {count})
    tokens = make_tokens(spec["sign"], spec["user_id"], spec["role"], count)
    per_source = spec.get("per_source")
    sources = source_addresses(count, int(per_source)) if per_source else [None] * count
    clients: list[WSClient | None] = []
    errors: list[str] = []
    for index, target in enumerate(steps):
        first = len(clients)
        started = time.monotonic()
        opened, failed = await open_sessions(
            spec["host"],
            spec["port"],
            tokens[first:target],
            spec["concurrency"],
            sources[first:target],
        )
        seconds = time.monotonic() - started
        clients += opened
        errors += failed
        new = sum(1 for c in opened if c is not None)
        emit(
            "held",
            step=index,
            last=index == len(steps) - 1,
            requested=target,
            held=sum(1 for c in clients if c is not None),
            failed=target - sum(1 for c in clients if c is not None),
            error_samples=errors[:5],
            sources=len({s for s in sources[:target] if s is not None}),
            connect_seconds=seconds,
            connect_per_s=new / seconds if seconds else None,
        )
        line = await _stdin_line(float(spec.get("hold_timeout", 120)))
        if index == len(steps) - 1 or line.strip() != "next":
            break
    held = sum(1 for c in clients if c is not None)
    still_open = sum(1 for c in clients if c is not None and not c.closed.done())
    close_codes: dict[str, int] = {}
    for client in clients:
        if client is not None and client.closed.done():
            key = str(client.close_code)
            close_codes[key] = close_codes.get(key, 0) + 1
    started = time.monotonic()
    await close_all(clients, timeout=20)
    emit(
        "done",
        still_open=still_open,
        dropped_while_held=held - still_open,
        close_codes_while_held=close_codes,
        close_seconds=time.monotonic() - started,
    )


# -- revocation ----------------------------------------------------------------------------


async def _post(
    http: aiohttp.ClientSession, instance: dict[str, Any], path: str, token: str
) -> tuple[float, int, str | None, float]:
    """A bearer POST to one instance, timed: (sent, status, its ``X-Sessions-Closed`` receipt,
    answer read), the times on ``perf_counter``."""
    sent = time.perf_counter()
    async with http.post(
        f"http://{instance['host']}:{instance['port']}{path}",
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        status = response.status
        receipt = response.headers.get("X-Sessions-Closed")
        await response.read()
    return sent, status, receipt, time.perf_counter()


async def run_revoke(spec: dict[str, Any]) -> None:
    import aiohttp

    instances: list[dict[str, Any]] = spec["instances"]
    sign = spec["sign"]
    # Who is where: samples alternate between instances; so do groups and fillers.
    plan: list[tuple[str, int, str]] = []  # (token, instance, role in the run)
    for index, sample in enumerate(spec["samples"]):
        plan.append((sample, index % 2, "sample"))
    for group_index, group in enumerate(spec["groups"]):
        for index, token in enumerate(
            make_tokens(sign, group["user_id"], "client", group["count"])
        ):
            plan.append((token, index % 2, f"group{group_index}"))
    fillers = max(0, int(spec["total"]) - len(plan))
    for index, token in enumerate(make_tokens(sign, spec["filler_user_id"], "client", fillers)):
        plan.append((token, index % 2, "filler"))

    started = time.monotonic()
    opened: list[WSClient | None] = [None] * len(plan)
    errors: list[str] = []
    for instance_index, instance in enumerate(instances):
        positions = [i for i, (_, where, _) in enumerate(plan) if where == instance_index]
        clients, failed = await open_sessions(
            instance["host"], instance["port"], [plan[i][0] for i in positions], spec["concurrency"]
        )
        errors.extend(failed)
        for position, client in zip(positions, clients, strict=True):
            opened[position] = client
    held = sum(1 for c in opened if c is not None)
    emit(
        "held",
        held=held,
        requested=len(plan),
        seconds=time.monotonic() - started,
        error_samples=errors[:5],
    )
    per_instance = [
        sum(1 for i, c in enumerate(opened) if c is not None and plan[i][1] == k)
        for k in range(len(instances))
    ]

    timeout = aiohttp.ClientTimeout(total=10)
    single: list[dict[str, Any]] = []
    warmup = int(spec.get("warmup", 0))
    with OwnCollections() as own:
        async with aiohttp.ClientSession(timeout=timeout) as http:
            # One by one: log out a session held on one instance through the other instance.
            for position, (token, where, role) in enumerate(plan):
                if role != "sample":
                    continue
                client = opened[position]
                if client is None or client.closed.done():
                    continue
                t0, status, _, t_http = await _post(
                    http, instances[1 - where], "/v1/auth/logout", token
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(client.closed), 2.0)
                closed_at = client.close_at if client.closed.done() else None
                single.append(
                    {
                        "loadgen_gc_ms": own.during(t0, time.perf_counter()) * 1000,
                        "warmup": len(single) < warmup,
                        "status": status,
                        "http_ms": (t_http - t0) * 1000,
                        "close_ms": None if closed_at is None else (closed_at - t0) * 1000,
                        "close_code": client.close_code,
                        "via": f"{where}->{1 - where}",
                    }
                )
                await asyncio.sleep(float(spec.get("gap", 0.005)))

            singles_gc = own.summary()
            if spec.get("stepped"):
                # The orchestrator reads the instances' loop lag for this window before going on.
                emit("singles_done", count=len(single))
                if not (await _stdin_line(30.0)).strip():
                    raise RuntimeError("no go-ahead from the orchestrator")

            # logout/all: one request, every session of the user on both instances.
            groups: list[dict[str, Any]] = []
            for group_index, _group in enumerate(spec["groups"]):
                role = f"group{group_index}"
                members = [
                    (position, plan[position][1])
                    for position in range(len(plan))
                    if plan[position][2] == role and opened[position] is not None
                ]
                if not members:
                    continue
                first_position, where = members[0]
                t0, status, receipt, t_http = await _post(
                    http, instances[1 - where], "/v1/auth/logout/all", plan[first_position][0]
                )
                waiting = [opened[p].closed for p, _ in members if opened[p] is not None]  # type: ignore[union-attr]
                await asyncio.wait(waiting, timeout=10.0)
                latencies = []
                codes: dict[str, int] = {}
                for position, _ in members:
                    client = opened[position]
                    assert client is not None
                    if client.closed.done() and client.close_at is not None:
                        latencies.append((client.close_at - t0) * 1000)
                    key = str(client.close_code)
                    codes[key] = codes.get(key, 0) + 1
                groups.append(
                    {
                        "sessions": len(members),
                        "closed": len(latencies),
                        "status": status,
                        "receipt_header": receipt,
                        "http_ms": (t_http - t0) * 1000,
                        "close_ms": percentiles(latencies),
                        "close_codes": codes,
                    }
                )

    fillers_open = 0
    for position, (_, _, role) in enumerate(plan):
        client = opened[position]
        if role == "filler" and client is not None and not client.closed.done():
            fillers_open += 1
    filler_count = sum(1 for _, _, role in plan if role == "filler")
    warm = [s for s in single if s["warmup"]]
    single = [s for s in single if not s["warmup"]]
    close_latencies = [s["close_ms"] for s in single if s["close_ms"] is not None]
    await close_all(opened, timeout=20)
    emit(
        "done",
        sessions=held,
        per_instance=per_instance,
        single={
            "count": len(single),
            "closed": len(close_latencies),
            "close_ms": percentiles(close_latencies),
            "http_ms": percentiles([s["http_ms"] for s in single]),
            "statuses": sorted({s["status"] for s in single}),
            "close_codes": sorted({str(s["close_code"]) for s in single}),
            "warmup_close_ms": [s["close_ms"] for s in warm],
            "close_ms_each": [s["close_ms"] for s in single],
            "loadgen_gc_ms_each": [s["loadgen_gc_ms"] for s in single],
            "http_ms_each": [s["http_ms"] for s in single],
        },
        logout_all=groups,
        fillers_still_open=fillers_open,
        loadgen_gc=singles_gc,
        fillers=filler_count,
    )


# -- logins --------------------------------------------------------------------------------


async def run_login(spec: dict[str, Any]) -> None:
    import aiohttp

    url = f"http://{spec['host']}:{spec['port']}/v1/auth/login"
    body = {"email": spec["email"], "password": spec["password"]}
    deadline_end = time.monotonic() + float(spec["duration"])
    latencies: list[float] = []
    statuses: dict[str, int] = {}

    async def worker(http: aiohttp.ClientSession) -> None:
        while time.monotonic() < deadline_end:
            t0 = time.perf_counter()
            async with http.post(url, json=body) as response:
                await response.read()
                key = str(response.status)
            statuses[key] = statuses.get(key, 0) + 1
            if key == "200":
                latencies.append((time.perf_counter() - t0) * 1000)

    started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        await asyncio.gather(*(worker(http) for _ in range(int(spec["concurrency"]))))
    seconds = time.monotonic() - started
    emit(
        "done",
        window=(started, started + seconds),
        seconds=seconds,
        logins=len(latencies),
        logins_per_s=len(latencies) / seconds,
        statuses=statuses,
        latency_ms=percentiles(latencies),
    )


MODES = {"fanout": run_fanout, "hold": run_hold, "revoke": run_revoke, "login": run_login}


async def _main(spec: dict[str, Any]) -> None:
    await asyncio.wait_for(MODES[spec["mode"]](spec), float(spec.get("deadline", 300)))


def main() -> None:
    with open(sys.argv[1], "rb") as handle:
        spec = orjson.loads(handle.read())
    raise_nofile_limit()
    import uvloop

    try:
        uvloop.run(_main(spec))
    except Exception as exc:
        emit("error", error=f"{type(exc).__name__}: {exc}")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
