"""One session on its own, over a real WebSocket: its bounded queue, its token bucket, its close.

No hub: the session gets only what it needs (limits, a closing hook, a spawner), which is what
these tests hand it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient

from gateway.realtime.session import Limits, Session, SessionEnv
from gateway.types import CloseCode, Principal, Scope

ROOMY = Limits(burst=10, rate=100.0, queue_messages=100, queue_bytes=1 << 20)


class Server:
    """A WebSocket endpoint that makes one Session per connection and hands it to the test."""

    def __init__(self, limits: Limits) -> None:
        self.told_closing: list[Session] = []
        self.tasks: set[asyncio.Task[Any]] = set()
        self.revoked_after: list[float] = []
        self.env = SessionEnv(
            limits=limits,
            closing=self.told_closing.append,
            spawn=self._spawn,
            revoked=self.revoked_after.append,
        )
        self.sessions: asyncio.Queue[Session] = asyncio.Queue()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sessions.put_nowait(Session(ws, self.env, request.remote))
        async for _ in ws:
            pass
        return ws


Connect = Callable[[Limits], Awaitable[tuple[Server, Session, Any]]]


@pytest.fixture
async def connect(aiohttp_client: Any) -> Connect:
    async def start(limits: Limits) -> tuple[Server, Session, Any]:
        server = Server(limits)
        app = web.Application()
        app.router.add_get("/ws", server.handle)
        client: TestClient[Any, Any] = await aiohttp_client(app)
        ws = await client.ws_connect("/ws")
        session = await asyncio.wait_for(server.sessions.get(), 5)
        return server, session, ws

    return start


async def _frames(ws: Any, count: int) -> list[str]:
    return [(await asyncio.wait_for(ws.receive(), 5)).data for _ in range(count)]


async def _close_of(ws: Any) -> tuple[int, str]:
    message = await asyncio.wait_for(ws.receive(), 5)
    assert message.type is WSMsgType.CLOSE, message
    return message.data, message.extra


def _principal(expires_in: float = 3600) -> Principal:
    now = time.time()
    return Principal(
        user_id=7,
        role="client",
        actions=frozenset(),
        scope=Scope(network_ids=frozenset({2, 1}), device_ids=None),
        jti="j1",
        sid="s1",
        issued_at=now,
        expires_at=now + expires_in,
    )


async def test_frames_go_out_in_the_order_they_were_sent(connect: Connect) -> None:
    _, session, ws = await connect(ROOMY)
    for index in range(5):
        session.send(f'{{"n":{index}}}'.encode())
    assert await _frames(ws, 5) == [f'{{"n":{index}}}' for index in range(5)]


async def test_a_client_that_lets_the_queue_fill_is_closed_as_a_slow_consumer(
    connect: Connect,
) -> None:
    server, session, ws = await connect(
        Limits(burst=10, rate=100.0, queue_messages=2, queue_bytes=1 << 20)
    )
    for _ in range(3):
        session.send(b"{}")
    assert await _close_of(ws) == (CloseCode.SLOW_CONSUMER, "slow consumer: outbound queue full")
    assert server.told_closing == [session]
    assert session.closing
    assert not session.close(CloseCode.GOING_AWAY, "again")
    assert server.told_closing == [session]


async def test_the_queue_is_bounded_in_bytes_too(connect: Connect) -> None:
    _, session, ws = await connect(Limits(burst=10, rate=100.0, queue_messages=100, queue_bytes=10))
    session.send(b"x" * 6)
    session.send(b"y" * 6)
    assert await _close_of(ws) == (CloseCode.SLOW_CONSUMER, "slow consumer: outbound queue full")


async def test_one_frame_larger_than_the_byte_bound_is_written(connect: Connect) -> None:
    """The bound is on what waits behind a frame: a lone frame beyond it (a big item, a long
    list) would otherwise close every session it is for, each time it is sent again."""
    _, session, ws = await connect(Limits(burst=10, rate=100.0, queue_messages=100, queue_bytes=10))
    session.send(b"x" * 11)
    assert await _frames(ws, 1) == ["x" * 11]
    session.send(b"y" * 11)
    assert await _frames(ws, 1) == ["y" * 11]
    assert not session.closing


async def test_a_frame_that_would_cross_the_byte_bound_finds_the_queue_backlogged(
    connect: Connect,
) -> None:
    """A replay flushes before such a frame, so it goes out alone instead of overflowing."""
    _, session, ws = await connect(
        Limits(burst=10, rate=100.0, queue_messages=100, queue_bytes=100)
    )
    session.send(b"x" * 10)
    assert not session.backlogged() and not session.backlogged(90)
    assert session.backlogged(91)
    await session.flush(5)
    assert not session.backlogged(1000)
    assert await _frames(ws, 1) == ["x" * 10]


async def test_a_half_full_queue_is_backlogged_until_written(connect: Connect) -> None:
    _, session, ws = await connect(
        Limits(burst=10, rate=100.0, queue_messages=4, queue_bytes=1 << 20)
    )
    assert not session.backlogged()
    session.send(b"1")
    assert not session.backlogged()
    session.send(b"2")
    assert session.backlogged()
    await session.flush(5)
    assert not session.backlogged()
    assert await _frames(ws, 2) == ["1", "2"]


async def test_the_token_bucket_holds_a_burst_then_refills_at_the_rate(connect: Connect) -> None:
    _, session, _ = await connect(Limits(burst=2, rate=0.0, queue_messages=10, queue_bytes=1024))
    assert [session.take_token() for _ in range(3)] == [True, True, False]
    _, refilled, _ = await connect(Limits(burst=1, rate=50.0, queue_messages=10, queue_bytes=1024))
    assert refilled.take_token()
    assert not refilled.take_token()
    await asyncio.sleep(0.05)
    assert refilled.take_token()


async def test_close_sends_the_code_and_a_reason_cut_to_what_a_close_frame_holds(
    connect: Connect,
) -> None:
    server, session, ws = await connect(ROOMY)
    session.send(b'{"last":true}')
    assert session.close(CloseCode.TOKEN_REVOKED, "token revoked: " + "x" * 200)
    assert await _frames(ws, 1) == ['{"last":true}']
    code, reason = await _close_of(ws)
    assert code == CloseCode.TOKEN_REVOKED
    assert reason == ("token revoked: " + "x" * 200)[:120]
    session.send(b"{}")  # ignored once closing
    assert server.told_closing == [session]


async def test_rights_end_with_the_token_and_the_description_says_who(connect: Connect) -> None:
    _, session, _ = await connect(ROOMY)
    assert session.live_principal is None
    assert session.describe("i1") == {
        "id": str(session.id),
        "user_id": None,
        "jti": None,
        "networkIds": ["*"],
        "deviceIds": ["*"],
        "remote": "127.0.0.1",
        "connected_at": session.connected_at,
        "instance": "i1",
        "subscriptions": [],
    }
    principal = _principal()
    session.principal = principal
    assert session.live_principal is principal
    session.expired = True
    assert session.live_principal is None
    described = session.describe("i1")
    assert (described["user_id"], described["jti"], described["networkIds"]) == (7, "j1", [1, 2])
