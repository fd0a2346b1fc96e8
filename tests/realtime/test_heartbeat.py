"""The server's pings and the client's: answered, bounded, and no timer per session."""

from __future__ import annotations

import asyncio

from aiohttp import ClientWebSocketResponse, WSMsgType
from aiohttp._websocket.writer import WebSocketWriter

from gateway.app import WIRING_KEY
from tests.conftest import AppFactory, bearer
from tests.realtime.helpers import WAIT, build_world, connect


async def _stop_reading_until_paused(
    ws: ClientWebSocketResponse, writer: WebSocketWriter
) -> asyncio.Transport:
    """The client reads nothing from here on and floods 125-byte pings until the server's
    socket towards it is paused (its buffers full); returns the client's transport."""
    transport = ws._response.connection.transport  # type: ignore[union-attr]
    assert transport is not None
    transport.pause_reading()
    for _ in range(400):
        for _ in range(500):
            await ws.ping(b"p" * 125)
        await asyncio.sleep(0.01)  # the server reads and answers what came
        if writer.protocol.writing_paused:
            break
    assert writer.protocol.writing_paused, "the peer's socket never filled"
    return transport


async def test_a_client_ping_gets_a_pong_with_its_payload(make_client: AppFactory) -> None:
    client = await make_client()
    world = await build_world(client)
    ws = await client.ws_connect("/v1/ws", headers=bearer(world.alice), autoping=False)
    await ws.ping(b"are you there")
    reply = await asyncio.wait_for(ws.receive(), WAIT)
    assert (reply.type, reply.data) == (WSMsgType.PONG, b"are you there")
    await ws.ping(b"")
    reply = await asyncio.wait_for(ws.receive(), WAIT)
    assert (reply.type, reply.data) == (WSMsgType.PONG, b"")
    await ws.close()


async def test_an_answering_client_is_pinged_every_interval_and_stays(
    make_client: AppFactory,
) -> None:
    client = await make_client(ws_heartbeat=0.2)
    world = await build_world(client)
    ws = await client.ws_connect("/v1/ws", headers=bearer(world.alice), autoping=False)
    for _ in range(4):
        ping = await asyncio.wait_for(ws.receive(), WAIT)
        assert ping.type is WSMsgType.PING
        await ws.pong(ping.data)
    assert not ws.closed
    session = next(iter(client.app[WIRING_KEY].hub.sessions.values()))
    assert not session.closing
    await ws.close()


async def test_sessions_hold_no_loop_timer_for_their_heartbeat(make_client: AppFactory) -> None:
    """aiohttp's heartbeat is off: the hub's ticker pings (a loop timer per socket, and its pong
    timer's attribute, cost about 1.9 KiB per idle session)."""
    client = await make_client(ws_heartbeat=0.2)
    world = await build_world(client)
    peer = await connect(client, world.alice)
    await peer.no_push(0.5)  # a few pings, answered by aiohttp's client inside receive()
    session = next(iter(client.app[WIRING_KEY].hub.sessions.values()))
    assert session.ws._heartbeat is None and session.ws._heartbeat_cb is None
    assert "_pong_response_cb" not in vars(session.ws)
    assert await peer.is_open()


async def test_pings_from_a_client_that_does_not_read_are_not_buffered(
    make_client: AppFactory,
) -> None:
    """A flood of pings from a peer that never reads: once its socket is paused the server
    answers no more, so what it holds for that peer stays bounded; the session stays up."""
    client = await make_client()
    world = await build_world(client)
    ws = await client.ws_connect("/v1/ws", headers=bearer(world.alice), autoping=False)
    session = next(iter(client.app[WIRING_KEY].hub.sessions.values()))
    writer = session.ws._writer
    assert writer is not None
    ws_transport = await _stop_reading_until_paused(ws, writer)
    payload = b"p" * 125
    held = writer.transport.get_write_buffer_size()
    for _ in range(2_000):
        await ws.ping(payload)
    await asyncio.sleep(0.05)
    assert writer.transport.get_write_buffer_size() <= held + 127
    assert not session.closing
    ws_transport.abort()


async def test_a_client_that_reads_nothing_for_half_an_interval_is_dropped(
    make_client: AppFactory,
) -> None:
    """Its socket paused, the server's ping waits in the buffer and no pong can come: dropped
    (as with aiohttp's heartbeat), so a peer that is gone does not hold its session."""
    client = await make_client(ws_heartbeat=2.0)
    world = await build_world(client)
    ws = await client.ws_connect("/v1/ws", headers=bearer(world.alice), autoping=False)
    hub = client.app[WIRING_KEY].hub
    session = next(iter(hub.sessions.values()))
    writer = session.ws._writer
    assert writer is not None
    ws_transport = await _stop_reading_until_paused(ws, writer)
    deadline = asyncio.get_running_loop().time() + 3 * WAIT
    while session.id in hub.sessions:
        assert asyncio.get_running_loop().time() < deadline, "the silent peer was never dropped"
        await asyncio.sleep(0.05)
    assert session.close_code == 1006
    ws_transport.abort()
