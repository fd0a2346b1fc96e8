"""Loop steps, and the frames queued in one, written at its end without a task per session.

A session writes the first frame of a step at once (no queue, no task: the latency of a lone
push is one ``transport.write``); what follows in the same step is queued, and the outbox writes
every session's queue in one callback once the step is over, each as one ``transport.write``.
The queue bounds what one step may pile up for a session (the slow-consumer rule). Only a
session whose transport is paused gets a writer task, which waits for the socket to drain.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterable
from typing import Protocol

_SHORT = tuple(bytes((0x81, n)) for n in range(126))
_MEDIUM = struct.Struct("!BBH").pack
_LONG = struct.Struct("!BBQ").pack


def text_frames(payloads: Iterable[bytes]) -> bytes:
    """Unmasked, unfragmented server text frames (RFC 6455 5.2), concatenated."""
    parts: list[bytes] = []
    append = parts.append
    for payload in payloads:
        length = len(payload)
        if length < 126:
            append(_SHORT[length])
        elif length < 65536:
            append(_MEDIUM(0x81, 126, length))
        else:
            append(_LONG(0x81, 127, length))
        append(payload)
    return b"".join(parts)


def text_frame(payload: bytes) -> bytes:
    """One unmasked server text frame (the common case of ``text_frames``, without its list)."""
    length = len(payload)
    if length < 126:
        return _SHORT[length] + payload
    return text_frames((payload,))


class Writable(Protocol):
    def write_queued(self) -> None: ...


class Step:
    """One step of the event loop, as far as sessions can tell: a new one begins each time the
    outbox has written what the last one queued."""

    __slots__ = ()


class Outbox:
    """The current step of the running loop, and the sessions with something queued in it."""

    __slots__ = ("_armed", "_loop", "_pending", "step")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[Writable] = []
        self._armed = False
        self.step = Step()

    def arm(self) -> Step:
        """The current step, which ends (and a new one begins) once the running callbacks are
        done; a session that wrote in it queues what else it sends until then."""
        loop = asyncio.get_running_loop()
        if not self._armed or self._loop is not loop:
            # (A loop that stopped before the end of its step: tests run one loop each.)
            if self._loop is not loop:
                self._pending = []
            self._loop = loop
            self._armed = True
            loop.call_soon(self._write)
        return self.step

    def add(self, session: Writable) -> None:
        self.arm()
        self._pending.append(session)

    def _write(self) -> None:
        pending = self._pending
        self._pending = []
        self._armed = False
        self.step = Step()
        for session in pending:
            session.write_queued()


OUTBOX = Outbox()
"""One per process: a session belongs to the loop that is running when it queues a frame."""
