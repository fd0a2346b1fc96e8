"""Notifications and commands: numbered in memory, acknowledged at once, written in batches.

Items stay in the pending set until their batch is committed, which lets a replay include what
was acknowledged but not yet written. The pending set is bounded, in items (``max_pending``)
and in bytes of payload (``max_pending_bytes``): beyond either a new item is refused (503), never
acknowledged and then dropped, nor held until the process runs out of memory. Before that
bound, inserts wait for a writer that is behind (``room``). Reading what is stored is
``StoredMessages``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Sequence

from gateway import supervise
from gateway.errors import Unavailable
from gateway.store.db import Pool
from gateway.store.health import DatabaseHealth
from gateway.store.ids import IdBlocks
from gateway.store.rows import (
    COMMAND_COLUMNS,
    command_of,
    payload_bytes,
)
from gateway.store.stored import StoredMessages
from gateway.store.writer import BatchWriter
from gateway.types import NOTIFICATION, Command, Notification

log = logging.getLogger(__name__)


SHUTDOWN_WRITE_TIMEOUT = 5.0
"""How long shutdown keeps retrying to write what is pending before it counts it as lost."""

ROOM_WAIT = 1.0
"""Longest an insert waits for a writer that is behind; then it is admitted, or refused at the
backlog's bound, as if it had not waited."""


class MessageStore(StoredMessages):
    def __init__(
        self,
        pool: Pool,
        *,
        interval: float,
        batch: int,
        max_pending: int = 100_000,
        max_pending_bytes: int = 256 * 1024 * 1024,
        page_max_bytes: int = 64 * 1024 * 1024,
        health: DatabaseHealth | None = None,
    ) -> None:
        self.pool = pool
        self.interval = interval
        self.batch = batch
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self.page_max_bytes = page_max_bytes
        """Bytes of payload one history page may hold (see ``history.find``)."""
        self.pending_bytes = 0
        self._sizes: dict[int, int] = {}
        """What each pending item counts in ``pending_bytes``, by id (a command's negated: a
        number, where a tuple key would be made per item)."""
        self.health = health
        self.writer = BatchWriter(pool)
        self.refused = 0
        self.ids = IdBlocks(pool)
        self.take_id = self.ids.take
        """A new message id, or None when one must be awaited from ``next_id``."""
        self._notifications: dict[int, Notification] = {}
        self._commands: dict[int, Command] = {}
        self._wake = asyncio.Event()
        self._closed = False
        self._full = False
        self._task: asyncio.Task[None] | None = None
        self.settled = 0
        self.failed = 0
        """Items settled (written or dead-lettered) and batch writes that failed: read by the
        metrics at scrape time."""
        self._arrival: asyncio.Future[None] | None = None
        self._room: asyncio.Future[None] | None = None
        self.lost_at_close = 0
        """Acknowledged items ``close`` could not write (the process's exit status says so)."""

    @property
    def behind(self) -> bool:
        """Two batches or more wait while the writer is writing (not failing, not closing)."""
        return (
            len(self._notifications) + len(self._commands) >= 2 * self.batch
            and self._task is not None
            and not self._closed
            and not (self.health is not None and self.health.down)
        )

    async def room(self) -> None:
        """Wait, at most ``ROOM_WAIT``, until the writer is no longer ``behind``.

        Inserts call this when it is: their sessions are not read meanwhile, so a flood slows
        to what storage takes instead of filling the backlog up to its bound and getting 503s
        (a gateway at full CPU delivered a third less, most of its inserts refused). An outage
        is not waited for: its inserts are refused at the bound, at once."""
        if self._room is None:
            self._room = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ROOM_WAIT):
                await asyncio.shield(self._room)

    def _make_room(self) -> None:
        room, self._room = self._room, None
        if room is not None and not room.done():
            room.set_result(None)

    async def next_id(self) -> int:
        return await self.ids.next_id()

    # -- writing ---------------------------------------------------------------------------

    @property
    def pending_count(self) -> int:
        return len(self._notifications) + len(self._commands)

    def _admit(self, key: int, new: bool, size: int) -> None:
        """Refuse (503) rather than acknowledge what could not be kept: storage is behind by
        ``max_pending`` items or ``max_pending_bytes`` of payload, or the store is closing.
        Counts what is admitted; a new state of a pending command is always admitted."""
        if self._closed:
            raise Unavailable("The gateway is shutting down; retry on another instance")
        if not new or (
            len(self._notifications) + len(self._commands) < self.max_pending
            # One item bigger than the bound alone is kept, or it could never be stored.
            and (self.pending_bytes + size <= self.max_pending_bytes or not self.pending_bytes)
        ):
            self._full = False
            self.pending_bytes += size - self._sizes.get(key, 0)
            self._sizes[key] = size
            return
        self.refused += 1
        if not self._full:
            self._full = True
            log.warning(
                "%d messages (%d bytes of payload) wait to be written "
                "(GATEWAY_PERSIST_MAX_PENDING, GATEWAY_PERSIST_MAX_PENDING_BYTES); "
                "refusing new ones until storage catches up",
                self.pending_count,
                self.pending_bytes,
            )
        raise Unavailable("Storage is behind; retry later", retry_after=1)

    def add_notification(self, item: Notification) -> None:
        """Raises Unavailable instead of queueing beyond the bounds."""
        self._admit(
            item.id,
            item.id not in self._notifications,
            len(item.notification) + payload_bytes(item.parameters),
        )
        self._notifications[item.id] = item
        if len(self._notifications) >= self.batch:
            self._wake.set()
        if self._arrival is not None:
            self._arrived()

    def put_command(self, item: Command) -> None:
        """A new command or a new state of one; the latest state is what gets written.
        Raises Unavailable instead of queueing beyond the bounds."""
        self._admit(
            -item.id,
            item.id not in self._commands,
            len(item.command) + payload_bytes(item.parameters) + payload_bytes(item.result),
        )
        self._commands[item.id] = item
        if len(self._commands) >= self.batch:
            self._wake.set()
        if self._arrival is not None:
            self._arrived()

    def arrival(self) -> asyncio.Future[None]:
        """Resolved when the next item is acknowledged here (long polls wait on it)."""
        if self._arrival is None:
            self._arrival = asyncio.get_running_loop().create_future()
        return self._arrival

    def _arrived(self) -> None:
        arrival, self._arrival = self._arrival, None
        if arrival is not None and not arrival.done():
            arrival.set_result(None)

    def pending(self, kind: str) -> list[Notification | Command]:
        """What is acknowledged but not yet written (``kind``: notification or command)."""
        items = self._notifications if kind == NOTIFICATION else self._commands
        return list(items.values())

    @property
    def written(self) -> int:
        return self.settled - self.writer.dead_lettered

    def _settled_notifications(self, items: Sequence[Notification]) -> None:
        self.settled += len(items)
        pending, sizes = self._notifications, self._sizes
        forgotten = 0
        for item in items:
            if pending.pop(item.id, None) is not None:
                forgotten += sizes.pop(item.id, 0)
        self.pending_bytes -= forgotten
        if self._room is not None and not self.behind:
            self._make_room()

    def _settled_commands(self, items: Sequence[Command]) -> None:
        self.settled += len(items)
        pending, sizes = self._commands, self._sizes
        forgotten = 0
        for item in items:
            if pending.get(item.id) is item:
                del pending[item.id]
                forgotten += sizes.pop(-item.id, 0)
        self.pending_bytes -= forgotten
        if self._room is not None and not self.behind:
            self._make_room()

    async def flush(self) -> None:
        """Write every full batch pending now (a backlog drains at once), or the one partial
        batch when there is no full one. Raises only transient errors (what is not written
        stays pending); a row PostgreSQL refuses goes to ``dead_letters``."""
        for _ in range(max(1, self.pending_count // self.batch)):
            notifications = list(itertools.islice(self._notifications.values(), self.batch))
            commands = list(itertools.islice(self._commands.values(), self.batch))
            if not notifications and not commands:
                break
            try:
                if notifications:
                    await self.writer.write(
                        "notification", notifications, self._settled_notifications
                    )
                if commands:
                    await self.writer.write("command", commands, self._settled_commands)
            except Exception as exc:
                self.failed += 1
                if self.health is not None:
                    self.health.failed(exc)
                self._make_room()  # a failing writer is not waited for
                raise
            if self.health is not None:
                self.health.succeeded()

    async def _cycle(self) -> None:
        # Not wait_for: on Python 3.11 it can swallow a cancellation that races the wake-up.
        woken = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.interval):
                await self._wake.wait()
                woken = True
        self._wake.clear()
        if woken and self.pending_count < self.batch:
            # Woken for a batch that filled while the last one was written, and written with
            # it: what is left is partial and waits for the timer.
            return
        await self.flush()

    def start(self) -> None:
        """Write what is pending every ``interval`` (sooner when a batch fills up); after a
        failure, again with a backoff capped at one second."""
        self._task = supervise.spawn(
            "message-writer",
            self._cycle,
            first_delay=0.0,
            backoff=self.interval,
            backoff_cap=1.0,
        )

    async def close(self, bound: float = SHUTDOWN_WRITE_TIMEOUT) -> None:
        """Stop the writer, then write what is pending, retrying for at most ``bound``
        seconds; logs exactly how many acknowledged items could not be written."""
        self._closed = True
        self._make_room()
        if self._task is not None:
            await supervise.stop([self._task])
            self._task = None
        await self.ids.close()
        deadline = time.monotonic() + bound
        delays = supervise.Backoff(0.1, 1.0)
        while self.pending_count:
            remaining = deadline - time.monotonic()
            try:
                async with asyncio.timeout(max(0.001, remaining)):
                    await self.flush()
            except Exception as exc:  # noqa: BLE001 - retried until the bound, then counted
                delay = delays.next()
                if delays.failures == 1:
                    log.warning("shutdown: writing pending messages failed, retrying: %r", exc)
                if time.monotonic() + delay >= deadline:
                    break
                await asyncio.sleep(delay)
        lost = (len(self._notifications), len(self._commands))
        self.lost_at_close = sum(lost)
        if any(lost):
            log.error(
                "shutdown: %d notifications and %d commands were acknowledged but could not be "
                "written within %.0f s: lost",
                *lost,
                bound,
            )
        else:
            log.info("shutdown: every acknowledged notification and command is written")

    # -- reading ---------------------------------------------------------------------------

    async def get_command(self, command_id: int) -> Command | None:
        pending = self._commands.get(command_id)
        if pending is not None:
            return pending
        row = await self.pool.fetchrow(
            f"SELECT {COMMAND_COLUMNS} FROM commands WHERE id = $1",  # noqa: S608 - fixed
            command_id,
        )
        return None if row is None else command_of(row)
