"""Session hygiene: oversized and malformed frames, error budget, rate limit, slow consumers."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import WSMsgType

from gateway.app import WIRING_KEY
from tests.conftest import AppFactory, bearer
from tests.realtime.helpers import build_world, connect, insert, mint


async def test_oversized_frame_closes_1009(make_client: AppFactory) -> None:
    client = await make_client(ws_max_message_bytes=1024)
    world = await build_world(client)
    peer = await connect(client, world.alice)
    fits = {"action": "server/info", "requestId": "fits", "pad": "x" * 900}
    await peer.send_raw(orjson.dumps(fits).decode())
    assert (await peer.reply("fits"))["status"] == "success"
    await peer.send_raw(orjson.dumps({"action": "server/info", "pad": "x" * 2000}).decode())
    assert await peer.closed() == (1009, "")


async def test_malformed_json_and_unknown_action_get_400(make_client: AppFactory) -> None:
    client = await make_client()
    world = await build_world(client)
    peer = await connect(client, world.alice)

    async def raw_error(data: str | bytes) -> dict[str, Any]:
        if isinstance(data, bytes):
            await peer.ws.send_bytes(data)
        else:
            await peer.send_raw(data)
        return await peer.reply(None)

    assert await raw_error("{not json") == {
        "action": None,
        "requestId": None,
        "status": "error",
        "code": 400,
        "error": "Malformed JSON",
    }
    assert await raw_error(b"\xff\xfe") == {
        "action": None,
        "requestId": None,
        "status": "error",
        "code": 400,
        "error": "Malformed JSON",
    }
    assert await raw_error("[1, 2]") == {
        "action": None,
        "requestId": None,
        "status": "error",
        "code": 400,
        "error": "A request must be a JSON object",
    }
    assert await raw_error('{"requestId": null}') == {
        "action": None,
        "requestId": None,
        "status": "error",
        "code": 400,
        "error": "Unknown action: None",
    }
    await peer.fails("device/explode", 400, "Unknown action: 'device/explode'")
    # requestId may be any JSON value and is echoed as given.
    await peer.ws.send_bytes(orjson.dumps({"action": "nope", "requestId": {"n": [1]}}))
    body = await peer.reply({"n": [1]})
    assert body == {
        "action": "nope",
        "requestId": {"n": [1]},
        "status": "error",
        "code": 400,
        "error": "Unknown action: 'nope'",
    }
    # A binary frame holding a request is served like a text one.
    await peer.ws.send_bytes(
        orjson.dumps({"action": "device/get", "requestId": 7, "deviceId": "d1"})
    )
    assert (await peer.reply(7))["device"]["id"] == "d1"
    assert await peer.is_open()


async def test_too_many_consecutive_errors_close_1008(make_client: AppFactory) -> None:
    client = await make_client(ws_max_errors=3)
    world = await build_world(client)
    peer = await connect(client, world.alice)
    for _ in range(2):
        await peer.fails("nope", 400, "Unknown action: 'nope'")
    await peer.ok("server/info")  # a success resets the count
    for _ in range(2):
        await peer.fails("device/get", 403, "Device d2 is outside the token's scope", deviceId="d2")
    assert await peer.is_open()  # ...and so does this one
    await peer.fails("nope", 400, "Unknown action: 'nope'")
    await peer.fails("nope", 400, "Unknown action: 'nope'")
    # The third consecutive error is still answered, then the socket closes.
    await peer.fails("nope", 400, "Unknown action: 'nope'")
    assert await peer.closed() == (1008, "too many errors")


async def test_rate_limit_429_then_close_4029(make_client: AppFactory) -> None:
    client = await make_client(ws_rate=5, ws_burst=5)
    world = await build_world(client)
    peer = await connect(client, world.alice)
    ids = [await peer.send("server/info") for _ in range(11)]
    for request_id in ids[:5]:
        assert (await peer.reply(request_id))["status"] == "success"
    for request_id in ids[5:10]:
        assert await peer.reply(request_id) == {
            "action": "server/info",
            "requestId": request_id,
            "status": "error",
            "code": 429,
            "error": "Rate limit exceeded; slow down",
        }
    # The sixth rejection in a row (burst + 1) ends the session.
    assert await peer.closed() == (4029, "rate limit exceeded")
    assert not peer.has_reply(ids[10])


async def test_rate_limit_recovers_when_the_client_slows_down(make_client: AppFactory) -> None:
    client = await make_client(ws_rate=5, ws_burst=5)
    world = await build_world(client)
    peer = await connect(client, world.alice)
    ids = [await peer.send("server/info") for _ in range(8)]
    replies = [await peer.reply(request_id) for request_id in ids]
    assert [r["status"] for r in replies] == ["success"] * 5 + ["error"] * 3
    assert {r["code"] for r in replies[5:]} == {429}
    await asyncio.sleep(0.5)  # 5/s refills two tokens
    await peer.ok("server/info")
    await peer.ok("device/get", deviceId="d1")
    await peer.fails("server/info", 429, "Rate limit exceeded; slow down")
    await asyncio.sleep(0.25)
    await peer.ok("server/info")


async def test_slow_consumer_burst_closes_4008(make_client: AppFactory) -> None:
    """Deterministic: one notification matching six subscriptions of the same session queues
    six pushes in one synchronous fan-out step, before the session's writer task can run and
    send any of them. Six is more than ws_queue_messages=5, so the session is closed as a slow
    consumer without the test depending on socket buffer sizes."""
    client = await make_client(ws_queue_messages=5, ws_queue_bytes=2000)
    world = await build_world(client)
    subscriber = await connect(client, world.alice)
    for _ in range(6):
        await subscriber.subscribe(deviceId="d1")
    publisher = await connect(client, world.admin)
    await insert(publisher, "d1", "temp")
    assert await subscriber.closed() == (4008, "slow consumer: outbound queue full")
    assert list(subscriber.pushes) == []  # the queue is dropped, not delivered late
    assert await publisher.is_open()


async def test_slow_consumer_by_bytes_closes_4008(make_client: AppFactory) -> None:
    """Deterministic as above: two subscriptions, one notification of ~1.2 KB queue ~2.6 KB at
    once, more than ws_queue_bytes=2000; the same notification to one subscription fits."""
    client = await make_client(ws_queue_messages=5, ws_queue_bytes=2000)
    world = await build_world(client)
    fits = await connect(client, world.alice)
    await fits.subscribe(deviceId="d1")
    overflows = await connect(client, world.alice)
    await overflows.subscribe(deviceId="d1")
    await overflows.subscribe(names=["big"])
    publisher = await connect(client, world.admin)
    item = await insert(publisher, "d1", "big", {"blob": "x" * 1200})
    assert (await fits.push())["notification"]["id"] == item["id"]
    assert await overflows.closed() == (4008, "slow consumer: outbound queue full")


async def test_reading_consumer_is_not_slow(make_client: AppFactory) -> None:
    client = await make_client(ws_queue_messages=5, ws_queue_bytes=2000)
    world = await build_world(client)
    subscriber = await connect(client, world.alice)
    sub = await subscriber.subscribe(deviceId="d1")
    publisher = await connect(client, world.admin)
    ids = [(await insert(publisher, "d1", f"n{i}", {"i": i}))["id"] for i in range(40)]
    pushes = await subscriber.pushes_n(40)
    assert [(p["subscriptionId"], p["notification"]["id"]) for p in pushes] == [
        (sub, i) for i in ids
    ]
    assert await subscriber.is_open()


async def test_consumer_that_stops_reading_closes_4008(make_client: AppFactory) -> None:
    """A subscriber that never calls receive(): aiohttp's client stops reading the socket once
    64 KiB are buffered, the kernel buffers fill, the server's writer blocks, and its queue
    (ws_queue_messages=5) overflows. The kernel buffer sizes are not ours to fix, so the
    publisher inserts ~60 KB notifications until the server marks the session closing (read
    from the hub; bounded), then the subscriber reads: the pushes that got through, then 4008.
    """
    client = await make_client(ws_queue_messages=5)
    world = await build_world(client)
    admin_token = await mint(client, world.admin, expires_in=600)
    subscriber = await connect(client, world.alice)
    await subscriber.subscribe(deviceId="d1")
    hub = client.app[WIRING_KEY].hub

    def closing() -> bool:
        return any(s.closing for s in hub.sessions.values())

    publisher = await connect(client, admin_token)
    blob = "x" * 60_000
    for _ in range(2_000):
        await insert(publisher, "d1", "big", {"blob": blob})
        if closing():
            break
    assert closing(), "the server never found the subscriber slow"
    code, reason = await subscriber.closed(timeout=10)
    assert (code, reason) == (4008, "slow consumer: outbound queue full")
    assert all(p["notification"]["notification"] == "big" for p in subscriber.pushes)


async def test_missing_pong_closes_the_socket(make_client: AppFactory) -> None:
    """ws_heartbeat=0.2: the server pings; a client that never answers is dropped, one that
    does stays."""
    client = await make_client(ws_heartbeat=0.2)
    world = await build_world(client)
    answering = await connect(client, world.alice)
    # aiohttp's client answers pings inside receive(): keep the answering one reading.
    reading = asyncio.create_task(answering.no_push(1.0))
    silent = await client.ws_connect("/v1/ws", headers=bearer(world.alice), autoping=False)
    kinds = []
    while True:
        msg = await asyncio.wait_for(silent.receive(), 3)
        kinds.append(msg.type)
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR):
            break
    # Pinged, then dropped without a close frame (no pong: the peer is presumed gone).
    assert kinds[0] is WSMsgType.PING and set(kinds[:-1]) == {WSMsgType.PING}
    assert kinds[-1] is WSMsgType.CLOSED and silent.close_code == 1006
    await asyncio.wait_for(reading, 3)
    assert await answering.is_open()
