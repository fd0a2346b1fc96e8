"""Frames queued during one event-loop step, written at its end without a task per session.

A session queues what it sends; the outbox writes every session's queue in one callback once the
step is over, each as one ``transport.write``. Until then a queue bounds what one step may pile up
for a session (the slow-consumer rule). Only a session whose transport is paused gets a writer
task, which waits for the socket to drain.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Sequence
from typing import Protocol

_SHORT = tuple(bytes((0x81, n)) for n in range(126))
_MEDIUM = struct.Struct("!BBH").pack
_LONG = struct.Struct("!BBQ").pack


def _header(length: int) -> bytes:
    if length < 126:
        return _SHORT[length]
    if length < 65536:
        return _MEDIUM(0x81, 126, length)
    return _LONG(0x81, 127, length)


_TABLED = 4096
_HEADERS = tuple(_header(length) for length in range(_TABLED))
"""The headers of the usual frames, made once (about 150 KiB): a look-up per frame, no call."""


def text_frames(payloads: Sequence[bytes]) -> bytes:
    """Unmasked, unfragmented server text frames (RFC 6455 5.2), concatenated."""
    if len(payloads) == 1:  # the usual step at a moderate rate: no list, no join
        payload = payloads[0]
        length = len(payload)
        return (_HEADERS[length] if length < _TABLED else _header(length)) + payload
    parts: list[bytes] = []
    append = parts.append
    for payload in payloads:
        length = len(payload)
        append(_HEADERS[length] if length < _TABLED else _header(length))
        append(payload)
    return b"".join(parts)


class Writable(Protocol):
    def write_queued(self) -> None: ...


class Outbox:
    """The sessions with something queued in the current step of the running loop."""

    __slots__ = ("_loop", "_pending")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[Writable] = []

    def add(self, session: Writable) -> None:
        pending = self._pending
        loop = self._loop
        if loop is None or not loop.is_running():
            # A loop that stopped before the end of its step (tests run one loop each) leaves
            # sessions that the next loop must not write for it. Asked only then: on Python 3.11
            # ``get_running_loop`` is a ``getpid`` system call, two per message when asked here
            # on every frame.
            self._loop = loop = asyncio.get_running_loop()
            self._pending = pending = []
        if not pending:
            loop.call_soon(self._write)
        pending.append(session)

    def _write(self) -> None:
        pending = self._pending
        self._pending = []
        for session in pending:
            session.write_queued()


OUTBOX = Outbox()
"""One per process: a session belongs to the loop that is running when it queues a frame."""
