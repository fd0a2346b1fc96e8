"""One live WebSocket connection: its principal, subscriptions and bounded outbound queue.

Idle sessions hold no task of their own: what a step queues is written at its end by the outbox
(one callback for every session), a writer task exists only while a socket is paused, and timers
are loop callbacks, which keeps the per-session memory close to a bare socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import struct
import time
from collections import deque
from collections.abc import Callable, Collection, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from gateway.config import Settings
from gateway.realtime.outbox import OUTBOX, text_frames
from gateway.types import CloseCode, Principal

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 5.0
"""How long a closing session waits for the client's close frame."""


@dataclass(slots=True, eq=False)
class Subscription:
    """What a session asked to receive. ``device_id`` set: one device's channel; otherwise the
    channels of ``network_ids`` (or of every network the session may reach)."""

    id: int
    session: Session
    kind: str
    device_id: str | None
    network_ids: frozenset[int] | None
    device_type_ids: frozenset[int] | None
    names: frozenset[str] | None
    with_updates: bool = False
    channels: set[str] = field(default_factory=set)
    id_bytes: bytes = b""
    replay_buffer: list[tuple[int | None, bytes]] | None = None
    """While a replay runs: live pushes held back as (item id, frame); id None for updates."""

    def __post_init__(self) -> None:
        self.id_bytes = str(self.id).encode()

    @property
    def dynamic(self) -> bool:
        """Follows the networks the session may reach, which change over time."""
        return self.device_id is None and self.network_ids is None

    def wants(self, network_id: int, device_type_id: int | None, name: str) -> bool:
        if self.network_ids is not None and network_id not in self.network_ids:
            return False
        if self.device_type_ids is not None and device_type_id not in self.device_type_ids:
            return False
        return self.names is None or name in self.names

    def to_json(self) -> dict[str, Any]:
        return {
            "subscriptionId": self.id,
            "type": self.kind,
            "deviceId": self.device_id,
            "networkIds": None if self.network_ids is None else sorted(self.network_ids),
            "deviceTypeIds": None if self.device_type_ids is None else sorted(self.device_type_ids),
            "names": None if self.names is None else sorted(self.names),
        }


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-session bounds: the inbound token bucket and the outbound queue."""

    burst: int
    rate: float
    queue_messages: int
    queue_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            burst=settings.ws_burst,
            rate=settings.ws_rate,
            queue_messages=settings.ws_queue_messages,
            queue_bytes=settings.ws_queue_bytes,
        )


@dataclass(frozen=True, slots=True)
class SessionEnv:
    """What every session of an instance shares (one object, one slot per session): its limits,
    the hook told when a session starts closing, the spawner of its close task, and the
    revocation latency's observer."""

    limits: Limits
    closing: Callable[[Session], None]
    spawn: Callable[[Coroutine[Any, Any, Any]], None]
    revoked: Callable[[float], None]
    """Told how long after its revocation was recorded a session's 4003 frame is written."""


_full_bucket = functools.lru_cache(maxsize=16)(float)

_SESSION_IDS = itertools.count(1)
"""Session ids are unique per instance (GET/DELETE /v1/sessions act on one instance)."""


class Session:
    __slots__ = (
        "__weakref__",
        "_ended",
        "_held",
        "_held_bytes",
        "_queue",
        "_queued_bytes",
        "_rate_at",
        "_rate_tokens",
        "_writer",
        "close_code",
        "closing",
        "connected_at",
        "env",
        "errors",
        "expired",
        "id",
        "principal",
        "rejected",
        "remote",
        "subscriptions",
        "tasks",
        "ws",
    )

    def __init__(self, ws: web.WebSocketResponse, env: SessionEnv, remote: str | None) -> None:
        self.id = next(_SESSION_IDS)
        self.ws = ws
        self.env = env
        self.remote = remote
        self.principal: Principal | None = None
        self.subscriptions: dict[int, Subscription] = {}
        self.connected_at = time.time()
        self.expired = False
        self.closing = False
        self.close_code: int | None = None
        self.errors = 0
        self.rejected = 0
        self._queue: deque[bytes] | None = None
        self._queued_bytes = 0
        self._held = 0
        self._held_bytes = 0
        self._ended: asyncio.Future[None] | None = None
        self.tasks: set[asyncio.Task[None]] | None = None
        """Requests that wait (a replay, a look-up on other instances) run here, off the read
        loop; None while there are none."""
        self._writer: asyncio.Task[None] | None = None
        # A full bucket: one float shared by every session, and a refill time of 0, which the
        # first take_token caps at the full burst anyway (48 bytes less per idle session).
        self._rate_tokens = _full_bucket(env.limits.burst)
        self._rate_at = 0.0

    # -- rights ----------------------------------------------------------------------------

    @property
    def live_principal(self) -> Principal | None:
        """The principal while its token is valid; None when absent or expired."""
        return None if self.expired else self.principal

    # -- rate limit ------------------------------------------------------------------------

    def take_token(self) -> bool:
        """Token bucket: refills at ``rate`` per second up to ``burst``.

        The count of rejections starts again only once the bucket is full, i.e. after the client
        kept within its rate long enough to earn its whole burst back: a client sending above
        its rate gets a token now and then, and must not have its count reset by each one."""
        now = time.monotonic()
        limits = self.env.limits
        burst = float(limits.burst)
        self._rate_tokens = min(burst, self._rate_tokens + (now - self._rate_at) * limits.rate)
        self._rate_at = now
        if self._rate_tokens >= burst:
            self.rejected = 0
        if self._rate_tokens >= 1.0:
            self._rate_tokens -= 1.0
            return True
        return False

    # -- sending ---------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Queue a frame; a client that lets the queue fill up is closed, not buffered."""
        if self.closing:
            return
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
            if self._writer is None:
                OUTBOX.add(self)
        queue.append(data)
        self._queued_bytes += len(data)
        if self._over_limit(len(queue)):
            return

    def write_queued(self) -> None:
        """Write what is queued in one go (the outbox calls this at the end of a step); a
        paused socket gets a writer task that waits for it to drain."""
        queue = self._queue
        if self._writer is not None or queue is None:
            return
        if not queue:
            self._queue = None
            return
        writer = self.ws._writer
        if writer is None or writer.compress or writer.protocol.writing_paused:
            self._writer = asyncio.create_task(self._drain())
            return
        self._queue = None
        self._queued_bytes = 0
        transport = writer.transport
        if transport.is_closing():
            log.debug("session %s: send failed: transport closing", self.id)
            return
        try:
            transport.write(text_frames(queue))
        except (ConnectionError, RuntimeError) as exc:
            log.debug("session %s: send failed: %s", self.id, exc)

    def _over_limit(self, queued: int) -> bool:
        """Queued frames and live pushes held back by replays count against one limit; beyond
        it the session is closed as a slow consumer and what it queued is dropped."""
        limits = self.env.limits
        if (
            queued + self._held <= limits.queue_messages
            and self._queued_bytes + self._held_bytes <= limits.queue_bytes
        ):
            return False
        if self._queue:
            self._queue.clear()
        self._queued_bytes = 0
        self.close(CloseCode.SLOW_CONSUMER, "slow consumer: outbound queue full")
        return True

    def hold(self, subscription: Subscription, item_id: int | None, data: bytes) -> None:
        """Keep a live push back while the subscription's replay runs (see Subscription)."""
        buffer = subscription.replay_buffer
        if self.closing or buffer is None:
            return
        buffer.append((item_id, data))
        self._held += 1
        self._held_bytes += len(data)
        self._over_limit(len(self._queue) if self._queue else 0)

    def release(self, subscription: Subscription, done: bool) -> list[tuple[int | None, bytes]]:
        """The pushes held back for ``subscription`` so far (no longer counted as held); when
        ``done``, later pushes go straight to the queue again."""
        held = subscription.replay_buffer or []
        subscription.replay_buffer = None if done else []
        self._held -= len(held)
        self._held_bytes -= sum(len(data) for _, data in held)
        return held

    def backlogged(self) -> bool:
        """The outbound queue is at least half full (by count or bytes): a bulk sender such as
        a replay should let the writer catch up before queueing more."""
        queue = self._queue
        if not queue:
            return False
        limits = self.env.limits
        return (len(queue) + self._held) * 2 >= limits.queue_messages or (
            self._queued_bytes + self._held_bytes
        ) * 2 >= limits.queue_bytes

    # -- requests that wait ----------------------------------------------------------------

    def start(self, work: Coroutine[Any, Any, None], limit: int) -> bool:
        """Run ``work`` beside the read loop; False (and ``work`` discarded) when ``limit``
        tasks are running already."""
        tasks = self.tasks
        if tasks is None:
            tasks = self.tasks = set()
        if len(tasks) >= limit:
            work.close()
            return False
        task = asyncio.create_task(work)
        tasks.add(task)
        task.add_done_callback(self._task_done)
        return True

    def _task_done(self, task: asyncio.Task[None]) -> None:
        tasks = self.tasks
        if tasks is not None:
            tasks.discard(task)
            if not tasks:
                self.tasks = None

    def cancel_tasks(self) -> None:
        for task in list(self.tasks or ()):
            task.cancel()

    async def _drain(self) -> None:
        queue = self._queue
        ws = self.ws
        try:
            while queue:
                data = queue.popleft()
                self._queued_bytes -= len(data)
                await ws.send_frame(data, WSMsgType.TEXT)
        except (ConnectionError, RuntimeError) as exc:
            log.debug("session %s: send failed: %s", self.id, exc)
            if queue:
                queue.clear()
            self._queued_bytes = 0
        finally:
            self._writer = None
            if not queue:
                self._queue = None  # idle sessions keep no buffer

    async def flush(self, limit: float) -> None:
        """Wait (at most ``limit`` seconds) for queued frames to be written."""
        self.write_queued()
        writer = self._writer
        if writer is not None:
            with contextlib.suppress(TimeoutError, ConnectionError, RuntimeError):
                await asyncio.wait_for(asyncio.shield(writer), limit)

    # -- closing ---------------------------------------------------------------------------

    def close(self, code: int, reason: str, *, revoked_at: float | None = None) -> bool:
        """Close from anywhere (a revocation, a timer); False when already closing.
        ``revoked_at``: when the revocation behind the close was recorded (for its latency)."""
        if self.closing:
            return False
        self.closing = True
        self.close_code = code
        self.env.closing(self)
        self.env.spawn(self._close(code, reason, revoked_at))
        return True

    async def _close(self, code: int, reason: str, revoked_at: float | None = None) -> None:
        """The close handshake: a close frame, then the read loop goes on (ignoring requests)
        until the client's close frame ends it. Closing the transport at once, with frames of
        the client's still unread, would reset the connection, and a client that was sending
        would never see the code (1006). A client that does not answer within CLOSE_TIMEOUT
        is cut off."""
        ws = self.ws
        message = reason.encode()[:120]
        try:
            await self.flush(1.0)
            if not ws.closed:
                ended = self._ended = asyncio.get_running_loop().create_future()
                await ws.send_frame(struct.pack("!H", code) + message, WSMsgType.CLOSE)
                if revoked_at is not None:
                    self.env.revoked(max(0.0, time.time() - revoked_at))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ended, CLOSE_TIMEOUT)
            await ws.close(code=code, message=message)
        except (TimeoutError, ConnectionError, RuntimeError) as exc:
            log.debug("session %s: close failed: %s", self.id, exc)

    def ended(self) -> None:
        """The read loop is over (the hub removes the session)."""
        ended = self._ended
        if ended is not None and not ended.done():
            ended.set_result(None)

    def describe(self, instance: str) -> dict[str, Any]:
        principal = self.principal
        return {
            "id": str(self.id),
            "user_id": None if principal is None else principal.user_id,
            "jti": None if principal is None else principal.jti,
            "networkIds": _scope(None if principal is None else principal.scope.network_ids),
            "deviceIds": _scope(None if principal is None else principal.scope.device_ids),
            "remote": self.remote,
            "connected_at": self.connected_at,
            "instance": instance,
            "subscriptions": [sub.to_json() for sub in self.subscriptions.values()],
        }


def _scope(values: Collection[Any] | None) -> list[Any]:
    return ["*"] if values is None else sorted(values)
