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
from collections.abc import Callable, Collection, Coroutine, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from aiohttp import WSMsgType, web

from gateway.config import Settings
from gateway.logs import session_task
from gateway.realtime.outbox import OUTBOX, text_frames
from gateway.realtime.subscription import Subscription
from gateway.types import CloseCode, Principal

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 5.0
"""How long a closing session waits for the client's close frame."""


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


_NO_SUBSCRIPTIONS: Mapping[int, Subscription] = MappingProxyType({})  # not a dict per idle socket

_full_bucket = functools.lru_cache(maxsize=16)(float)

_SESSION_IDS = itertools.count(1)
"""Session ids are unique per instance (GET/DELETE /v1/sessions act on one instance)."""


class Session:
    __slots__ = (
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
        self.subscriptions: Mapping[int, Subscription] = _NO_SUBSCRIPTIONS
        self.connected_at = time.time()
        self.expired = False
        self.closing = False
        self.close_code: int | None = None
        self.errors = 0
        self.rejected = 0
        self._queue: deque[bytes] | None = None
        self._queued_bytes = 0
        self._held = self._held_bytes = 0
        self._ended: asyncio.Future[None] | None = None
        self.tasks: set[asyncio.Task[None]] | None = None
        """Requests that wait (a replay, a look-up elsewhere), off the read loop; None if none."""
        self._writer: asyncio.Task[None] | None = None
        # A full bucket: one float shared by every session; the first take_token caps a refill.
        self._rate_tokens = _full_bucket(env.limits.burst)
        self._rate_at = 0.0

    def add_subscription(self, subscription: Subscription) -> None:
        subscriptions = self.subscriptions
        if not isinstance(subscriptions, dict):
            subscriptions = self.subscriptions = {}
        subscriptions[subscription.id] = subscription

    def drop_subscription(self, subscription: Subscription) -> None:
        subscriptions = self.subscriptions
        if isinstance(subscriptions, dict):
            subscriptions.pop(subscription.id, None)
            if not subscriptions:
                self.subscriptions = _NO_SUBSCRIPTIONS

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
        """Queue a frame for the end of this loop step (the outbox writes a session's frames of
        a step in one go); a client that lets the queue fill up is closed, not buffered.

        Writing the first frame of a step at once instead was measured (bench/README.md): a
        median 0.2-0.35 ms sooner, but a second frame in the same step then costs its own
        write, and with ten busy publishers that was 4-6 points more CPU at 10k msg/s and a
        lower saturation rate, for no change in the p99."""
        if self.closing:
            return
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
            if self._writer is None:
                OUTBOX.add(self)
        queue.append(data)
        self._queued_bytes += len(data)
        if len(queue) > 1 or self._held:  # one frame alone is within the bounds (see below)
            self._over_limit()

    def write_queued(self) -> None:
        """Write what is queued in one go (the outbox calls this at the end of a step) straight
        to the transport; a paused socket (its peer is not reading) gets a writer task that
        waits for it to drain, and so does a socket before its upgrade or with compression."""
        queue = self._queue
        if self._writer is not None or queue is None:
            return
        if not queue:
            self._queue = None
            return
        writer = self.ws._writer
        if writer is None or writer.compress or writer.protocol.writing_paused:
            self._writer = asyncio.create_task(self._drain(), name=session_task(self.id))
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

    def _outstanding(self) -> tuple[int, int]:
        """Frames and bytes against the queue's bounds: those queued and those held back by
        replays."""
        queue = self._queue
        return (len(queue) if queue else 0) + self._held, self._queued_bytes + self._held_bytes

    def _over_limit(self) -> bool:
        """Beyond the bounds the session is closed as a slow consumer and what it queued is
        dropped. The byte bound applies to what waits behind a frame: one frame larger than it
        on its own (a big item, a long list) is written, or it could never be delivered."""
        frames, size = self._outstanding()
        limits = self.env.limits
        if frames <= limits.queue_messages and (size <= limits.queue_bytes or frames == 1):
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
        self._over_limit()

    def release(self, subscription: Subscription, done: bool) -> list[tuple[int | None, bytes]]:
        """The pushes held back for ``subscription`` so far (no longer counted as held); when
        ``done``, later pushes go straight to the queue again."""
        held = subscription.replay_buffer or []
        subscription.replay_buffer = None if done else []
        self._held -= len(held)
        self._held_bytes -= sum(len(data) for _, data in held)
        return held

    def backlogged(self, coming: int = 0) -> bool:
        """At least half the queue's bounds are taken (by count or bytes), or a frame of
        ``coming`` bytes would cross the byte bound: a bulk sender such as a replay should let
        the writer catch up (``flush``) before queueing more."""
        if not self._queue:
            return False
        frames, size = self._outstanding()
        limits = self.env.limits
        return (
            frames * 2 >= limits.queue_messages
            or size * 2 >= limits.queue_bytes
            or size + coming > limits.queue_bytes
        )

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
        task = asyncio.create_task(work, name=session_task(self.id))
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
