"""A minimal WebSocket client on a bare asyncio Protocol, for the load generator only.

The load generator shares two cores with the server under test, so it must cost far less per
message than the server does: frames are parsed in one pass over each read, outbound frames are
pre-built bytes written in batches, and the client masks with the all-zero key (a valid key on the
wire, so the server unmasks as usual, but the client spends nothing on masking).
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
import time
from collections.abc import Callable
from typing import cast

import orjson

TEXT = 0x1
CLOSE = 0x8
PING = 0x9
PONG = 0xA

_ZERO_MASK = b"\x00\x00\x00\x00"

FrameHandler = Callable[[bytes], None]
"""Called with the payload of every TEXT/BINARY frame once the client is in streaming mode."""


def frame(payload: bytes, opcode: int = TEXT) -> bytes:
    """A client frame (FIN, masked with the zero key) ready for ``transport.write``."""
    length = len(payload)
    if length < 126:
        header = bytes((0x80 | opcode, 0x80 | length))
    elif length < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + struct.pack("!H", length)
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + struct.pack("!Q", length)
    return header + _ZERO_MASK + payload


class WSClient(asyncio.Protocol):
    """One client connection: handshake, request/reply for set-up, then streaming frames."""

    def __init__(self, host: str, port: int, path: str = "/v1/ws") -> None:
        self.host = host
        self.port = port
        self.path = path
        self.transport: asyncio.Transport | None = None
        self.upgraded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None
        self.close_at: float | None = None
        self.on_frame: FrameHandler | None = None
        self.received_ns = 0
        """With ``connect(stamped=True)``: when the kernel queued the bytes of the last read
        (CLOCK_REALTIME ns), so the client's own scheduling delay is not counted as latency."""
        self.after_read: Callable[[], None] | None = None
        self.frames = 0
        self._reply: asyncio.Future[bytes] | None = None
        self._rest = b""
        self._handshaken = False

    # -- connection ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but have its methods.
        self.transport = cast(asyncio.Transport, transport)
        key = base64.b64encode(os.urandom(16)).decode()
        self.transport.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        now = time.perf_counter()
        if not self.upgraded.done():
            self.upgraded.set_exception(ConnectionError(f"connection lost before upgrade: {exc}"))
        if self._reply is not None and not self._reply.done():
            self._reply.set_exception(ConnectionError("connection lost"))
        if self.close_at is None:
            self.close_at = now
        if not self.closed.done():
            self.closed.set_result(now)

    def data_received(self, data: bytes) -> None:
        if self._rest:
            data = self._rest + data
            self._rest = b""
        if not self._handshaken:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self._rest = data
                return
            status = data[: data.find(b"\r\n")]
            if b" 101 " not in status:
                if not self.upgraded.done():
                    self.upgraded.set_exception(ConnectionError(status.decode(errors="replace")))
                assert self.transport is not None
                self.transport.close()
                return
            self._handshaken = True
            self.upgraded.set_result(None)
            data = data[end + 4 :]
        self._parse(data)
        if self.after_read is not None:
            self.after_read()

    def _parse(self, data: bytes) -> None:
        """Split ``data`` into frames; a partial frame waits for the next read."""
        pos = 0
        size = len(data)
        while size - pos >= 2:
            opcode = data[pos] & 0x0F
            length = data[pos + 1] & 0x7F
            start = pos + 2
            if length == 126:
                if size - pos < 4:
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
                start = pos + 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                start = pos + 10
            end = start + length
            if end > size:
                break
            payload = data[start:end]
            pos = end
            if opcode <= 0x2:
                self.frames += 1
                reply = self._reply
                if reply is not None:
                    self._reply = None
                    if not reply.done():
                        reply.set_result(payload)
                elif self.on_frame is not None:
                    self.on_frame(payload)
            elif opcode == CLOSE:
                self._on_close(payload)
            elif opcode == PING:
                self.write(frame(payload, PONG))
        if pos < size:
            self._rest = data[pos:]

    def _on_close(self, payload: bytes) -> None:
        self.close_at = time.perf_counter()
        self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
        if self._reply is not None and not self._reply.done():
            self._reply.set_exception(ConnectionError(f"closed by server ({self.close_code})"))
        if not self.closed.done():
            self.closed.set_result(self.close_at)
        self.write(frame(payload[:2], CLOSE))
        assert self.transport is not None
        self.transport.close()

    # -- sending ---------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def backlog(self) -> int:
        """Bytes written but not yet taken by the kernel (the client-side queue)."""
        transport = self.transport
        return 0 if transport is None else transport.get_write_buffer_size()

    async def request(self, message: dict[str, object], timeout: float = 10.0) -> dict[str, object]:
        """Send one JSON request and wait for the next frame (set-up only, one at a time)."""
        loop = asyncio.get_running_loop()
        reply = self._reply = loop.create_future()
        self.write(frame(orjson.dumps(message)))
        data = await asyncio.wait_for(reply, timeout)
        result: dict[str, object] = orjson.loads(data)
        return result

    def close(self) -> None:
        """Start a normal close; the server's close frame (or EOF) completes ``closed``."""
        self.write(frame(struct.pack("!H", 1000), CLOSE))


SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
"""Linux: a receive timestamp (struct timespec, CLOCK_REALTIME) with every ``recvmsg``; on
loopback the kernel takes it when the sender's write enters the stack."""
_STAMP = struct.Struct("@qq")


class StampedTransport:
    """Just enough of a transport over a raw socket read with ``recvmsg``, so that every read
    carries the kernel's receive timestamp (asyncio's transports drop ancillary data)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        self._loop = loop
        self._sock = sock
        self._protocol: WSClient | None = None
        self._pending = bytearray()
        self._closing = False
        self._space = socket.CMSG_SPACE(_STAMP.size)

    def start(self, protocol: WSClient) -> None:
        self._protocol = protocol
        protocol.connection_made(cast(asyncio.Transport, self))
        self._loop.add_reader(self._sock.fileno(), self._readable)

    def _readable(self) -> None:
        protocol = self._protocol
        assert protocol is not None
        try:
            data, ancillary, _, _ = self._sock.recvmsg(1 << 18, self._space)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(exc)
            return
        if not data:
            self._lost(None)
            return
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                seconds, nanoseconds = _STAMP.unpack(value[: _STAMP.size])
                protocol.received_ns = seconds * 1_000_000_000 + nanoseconds
        protocol.data_received(data)

    def write(self, data: bytes) -> None:
        if self._closing:
            return
        if not self._pending:
            try:
                sent = self._sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self._lost(exc)
                return
            if sent == len(data):
                return
            data = data[sent:]
            self._loop.add_writer(self._sock.fileno(), self._writable)
        self._pending += data

    def _writable(self) -> None:
        try:
            sent = self._sock.send(self._pending)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(exc)
            return
        del self._pending[:sent]
        if not self._pending:
            self._loop.remove_writer(self._sock.fileno())
            if self._closing:
                self._lost(None)

    def get_write_buffer_size(self) -> int:
        return len(self._pending)

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        self._closing = True
        if not self._pending:
            self._lost(None)

    def abort(self) -> None:
        self._pending.clear()
        self._lost(None)

    def _lost(self, exc: Exception | None) -> None:
        if self._sock.fileno() < 0:
            return
        self._closing = True
        self._loop.remove_reader(self._sock.fileno())
        self._loop.remove_writer(self._sock.fileno())
        self._sock.close()
        if self._protocol is not None:
            self._protocol.connection_lost(exc)


async def connect(
    host: str,
    port: int,
    path: str = "/v1/ws",
    timeout: float = 10.0,
    source: str | None = None,
    stamped: bool = False,
) -> WSClient:
    """Open a TCP connection and complete the WebSocket upgrade (bounded by ``timeout``);
    ``source``: the local address to connect from (each has its own ephemeral ports);
    ``stamped``: read through a ``StampedTransport`` (``WSClient.received_ns`` is set)."""
    loop = asyncio.get_running_loop()
    local = None if source is None else (source, 0)

    async def open_() -> WSClient:
        protocol = WSClient(host, port, path)
        if stamped:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                if local is not None:
                    sock.bind(local)
                await loop.sock_connect(sock, (host, port))
            except BaseException:
                sock.close()
                raise
            StampedTransport(loop, sock).start(protocol)
        else:
            await loop.create_connection(lambda: protocol, host, port, local_addr=local)
        await protocol.upgraded
        return protocol

    return await asyncio.wait_for(open_(), timeout)
