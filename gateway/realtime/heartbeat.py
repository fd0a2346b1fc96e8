"""The server's pings, on one ticker for every session instead of aiohttp's timers on each.

aiohttp's heartbeat keeps a loop timer per socket and, from the first ping on, its pong timer's
attribute in each response's ``__dict__``: about 1.9 KiB per idle session, a tenth of one
(bench/README.md, "seventh pass"). Here a session costs a slot in a deadline bucket, and a set
entry only while a ping is unanswered. The read loop takes control frames itself
(``autoping=False``): it answers the client's pings and reports pongs here.
"""

from __future__ import annotations

import logging

from aiohttp import WSCloseCode

from gateway.realtime.deadlines import Deadlines
from gateway.realtime.session import Session

log = logging.getLogger(__name__)

PING = b"\x89\x00"
"""A server ping: FIN, opcode 0x9, no payload (a server's frames are not masked)."""

_PONG = 0x8A


class Heartbeat:
    """Ping every ``interval``; a ping with no pong within half of it drops the connection
    without a close frame (the peer is presumed gone: the client sees 1006), as aiohttp did."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._deadlines: Deadlines[Session] = Deadlines()
        self._awaiting: set[Session] = set()
        # Bound once: a deadline keeps its action per session.
        self._on_ping = self._ping
        self._on_pong_due = self._pong_due

    def start(self, session: Session) -> None:
        self._deadlines.set(session, self.interval, self._on_ping)

    def stop(self, session: Session) -> None:
        self._deadlines.cancel(session)
        self._awaiting.discard(session)

    def pong(self, session: Session) -> None:
        self._awaiting.discard(session)

    def answer(self, session: Session, payload: bytes) -> None:
        """A pong for the client's ping (its payload is at most 125 bytes: aiohttp's parser
        refuses a longer control frame). None while the socket is paused: a peer that pings
        without reading would otherwise grow the server's buffer without bound."""
        _write(session, bytes((_PONG, len(payload))) + payload, paused=False)

    def close(self) -> None:
        self._deadlines.close()
        self._awaiting.clear()

    def _ping(self, session: Session) -> None:
        if session.closing:
            return  # its close handshake is bounded on its own
        # Written to a paused socket too (two bytes an interval): a peer that reads nothing for
        # half an interval is dropped, as with aiohttp's heartbeat.
        _write(session, PING, paused=True)
        self._awaiting.add(session)
        self._deadlines.set(session, self.interval / 2, self._on_pong_due)

    def _pong_due(self, session: Session) -> None:
        if session not in self._awaiting:
            self._deadlines.set(session, self.interval / 2, self._on_ping)
            return
        self._awaiting.discard(session)
        log.debug("session %s: no pong within %.1fs: dropped", session.id, self.interval / 2)
        session.closing = True
        session.close_code = WSCloseCode.ABNORMAL_CLOSURE
        writer = session.ws._writer
        if writer is not None:
            # Not close(): that waits to write out what is buffered, which a peer that reads
            # nothing never lets happen. The read loop then ends, and the hub removes the session.
            writer.transport.abort()


def _write(session: Session, frame: bytes, *, paused: bool) -> None:
    """A control frame straight to the transport, between whole frames (every frame is written
    in one synchronous call); nothing when the socket is closing, or paused and not ``paused``."""
    writer = session.ws._writer
    if writer is None or (writer.protocol.writing_paused and not paused):
        return
    transport = writer.transport
    if transport.is_closing():
        return
    try:
        transport.write(frame)
    except (ConnectionError, RuntimeError) as exc:
        log.debug("session %s: control frame not written: %s", session.id, exc)
