"""What the store and the encoder cannot hold is refused at the edge, before it is acknowledged:
nesting, integers beyond their column, timestamps beyond every layer's range. Each refusal is an
error reply (the session stays open) and storage goes on: a notification sent after it is
written, as the row count shows."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import asyncpg
import orjson
from aiohttp import WSMsgType

from gateway.clock import iso
from tests.conftest import AppFactory
from tests.realtime.helpers import Peer, build_world, connect, insert, rest

DEEP = 300
"""Deeper than orjson can write (254): what used to stop the writer for the whole instance."""


def encode(value: Any) -> str:
    """The standard library's encoder writes what orjson refuses to (deeper than 254)."""
    return json.dumps(value)


def nested(depth: int) -> Any:
    """A value of ``depth`` levels of arrays ending in 1 (depth 1 is [1])."""
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


async def stored(database_url: str, table: str = "notifications") -> int:
    conn = await asyncpg.connect(database_url)
    try:
        count: int = await conn.fetchval(f"SELECT count(*) FROM {table}")
        return count
    finally:
        await conn.close()


async def eventually_stored(database_url: str, expected: int, table: str = "notifications") -> None:
    """The writer runs every 20 ms in tests: bounded wait for the row count."""
    deadline = time.monotonic() + 5
    while (count := await stored(database_url, table)) != expected:
        assert time.monotonic() < deadline, f"{count} rows in {table}, expected {expected}"
        await asyncio.sleep(0.02)


async def storage_goes_on(peer: Peer, database_url: str, expected: int) -> None:
    await insert(peer, "d1", "after")
    await eventually_stored(database_url, expected)


def deep_error(action: str | None, request_id: Any) -> dict[str, Any]:
    return {
        "action": action,
        "requestId": request_id,
        "status": "error",
        "code": 400,
        "error": "JSON nests deeper than 64 levels",
    }


async def test_nesting_beyond_the_limit_is_refused_and_storage_goes_on(
    make_client: AppFactory, clean_db: str
) -> None:
    client = await make_client()
    world = await build_world(client)
    peer = await connect(client, world.admin)
    for parameters in (nested(DEEP), nested(63), {"a": nested(62)}):
        await peer.send_raw(
            encode(
                {
                    "action": "notification/insert",
                    "requestId": "deep",
                    "deviceId": "d1",
                    "notification": {"notification": "deep", "parameters": parameters},
                }
            )
        )
        # Too deep to echo: the requestId of a refused message is not read.
        assert await peer.reply(None) == deep_error(None, None)
    # 64 levels in all: the message, its "notification" and 62 levels of parameters.
    fits = nested(62)
    await insert(peer, "d1", "fits", fits)
    await storage_goes_on(peer, clean_db, 2)
    conn = await asyncpg.connect(clean_db)
    try:
        row = await conn.fetchval(
            "SELECT parameters FROM notifications WHERE notification = 'fits'"
        )
    finally:
        await conn.close()
    assert orjson.loads(row) == fits


async def test_nesting_beyond_orjson_reading_limit_is_refused(make_client: AppFactory) -> None:
    client = await make_client()
    world = await build_world(client)
    peer = await connect(client, world.admin)
    await peer.send_raw('{"action": "server/info", "requestId": ' + "[" * 2000 + "]" * 2000 + "}")
    assert await peer.reply(None) == deep_error(None, None)
    assert await peer.is_open()


async def test_a_deep_request_id_gets_an_error_reply_not_a_dropped_socket(
    make_client: AppFactory, clean_db: str
) -> None:
    client = await make_client()
    world = await build_world(client)
    peer = await connect(client, world.admin)
    await peer.send_raw(encode({"action": "server/info", "requestId": nested(DEEP)}))
    assert await peer.reply(None) == deep_error(None, None)
    deep_but_fine = nested(63)
    await peer.ws.send_bytes(orjson.dumps({"action": "server/info", "requestId": deep_but_fine}))
    assert (await peer.reply(deep_but_fine))["status"] == "success"
    await storage_goes_on(peer, clean_db, 1)


async def test_deep_device_data_is_a_400_over_rest_and_websocket(make_client: AppFactory) -> None:
    client = await make_client()
    world = await build_world(client)
    response = await client.put(
        "/v1/devices/deep-1",
        data=encode({"name": "deep", "networkId": world.n1, "data": nested(DEEP)}),
        headers={"Authorization": f"Bearer {world.admin}", "Content-Type": "application/json"},
    )
    assert response.status == 400
    body = await response.json()
    assert body == {"message": "JSON nests deeper than 64 levels", "request_id": body["request_id"]}
    peer = await connect(client, world.admin)
    await peer.send_raw(
        encode(
            {
                "action": "device/save",
                "requestId": 1,
                "deviceId": "deep-1",
                "device": {"name": "deep", "networkId": world.n1, "data": nested(DEEP)},
            }
        )
    )
    assert await peer.reply(None) == deep_error(None, None)
    await rest(client, "GET", "/v1/devices/deep-1", world.admin, 404)
    assert await peer.is_open()


async def test_lifetime_beyond_int4_is_refused_and_storage_goes_on(
    make_client: AppFactory, clean_db: str
) -> None:
    client = await make_client()
    world = await build_world(client)
    peer = await connect(client, world.admin)
    for lifetime in (3_000_000_000, 2**31, 2**63 - 1):
        await peer.fails(
            "command/insert",
            400,
            "command.lifetime: must be at most 2147483647",
            deviceId="d1",
            command={"command": "set", "lifetime": lifetime},
        )
    await peer.send_raw(
        encode(
            {
                "action": "command/insert",
                "requestId": "huge",
                "deviceId": "d1",
                "command": {"command": "set", "lifetime": 2**64},
            }
        )
    )
    assert await peer.reply("huge") == {
        "action": "command/insert",
        "requestId": "huge",
        "status": "error",
        "code": 400,
        "error": "command.lifetime: must be at most 2147483647",
    }
    await peer.ok(
        "command/insert", deviceId="d1", command={"command": "set", "lifetime": 2**31 - 1}
    )
    await eventually_stored(clean_db, 1, "commands")
    await storage_goes_on(peer, clean_db, 1)


async def _timestamp_refused(peer: Peer, stamp: str, error: str) -> None:
    await peer.fails(
        "notification/insert",
        422,
        f"notification.timestamp: {error}",
        deviceId="d1",
        notification={"notification": "t", "timestamp": stamp},
    )
    await peer.fails(
        "command/insert",
        422,
        f"command.timestamp: {error}",
        deviceId="d1",
        command={"command": "t", "timestamp": stamp},
    )


async def test_timestamps_beyond_every_layer_are_refused_and_storage_goes_on(
    make_client: AppFactory, clean_db: str
) -> None:
    client = await make_client()
    world = await build_world(client)
    peer = await connect(client, world.admin)
    year_10000 = "9999-12-31T23:59:59-14:00"
    await _timestamp_refused(
        peer, year_10000, f"must be between years 1 and 9999 (UTC): {year_10000!r}"
    )
    await _timestamp_refused(
        peer,
        "0001-01-01T00:00:00+01:00",
        "must be between years 1 and 9999 (UTC): '0001-01-01T00:00:00+01:00'",
    )
    await _timestamp_refused(
        peer, "1969-12-31T23:59:59Z", "must not be before 1970-01-01T00:00:00Z"
    )
    await _timestamp_refused(
        peer,
        iso(time.time() + 2 * 86400),
        "must not be more than 24 hours ahead of the server's clock",
    )
    # Within a day ahead is a drifting device clock: accepted, stored and replayed as given.
    ahead = iso(time.time() + 3600)
    body = await peer.ok(
        "notification/insert",
        deviceId="d1",
        notification={"notification": "ahead", "timestamp": ahead},
    )
    assert body["notification"]["timestamp"] == ahead
    await storage_goes_on(peer, clean_db, 2)


async def test_subscribe_timestamps_cover_years_1_to_9999(make_client: AppFactory) -> None:
    client = await make_client()
    world = await build_world(client)
    peer = await connect(client, world.admin)
    await insert(peer, "d1", "old")
    assert await peer.subscribe(deviceId="d1", timestamp="0001-01-01T00:00:00Z")
    assert (await peer.push())["notification"]["notification"] == "old"
    assert await peer.subscribe(deviceId="d1", timestamp="9999-12-31T23:59:59Z")
    await peer.no_push()
    await peer.fails(
        "notification/subscribe",
        422,
        "timestamp: must be between years 1 and 9999 (UTC): '9999-12-31T23:59:59-14:00'",
        deviceId="d1",
        timestamp="9999-12-31T23:59:59-14:00",
    )


async def test_a_stored_row_dated_year_10000_is_replayed_at_the_last_moment_python_holds(
    make_client: AppFactory, clean_db: str
) -> None:
    """A row dated year 10000 (written before these checks existed): the replay that covers it
    goes through, with the row's time clamped to 9999-12-31T23:59:59.999Z, and storage goes on."""
    client = await make_client()
    world = await build_world(client)
    peer = await connect(client, world.admin)
    await insert(peer, "d1", "before")
    await eventually_stored(clean_db, 1)
    conn = await asyncpg.connect(clean_db)
    try:
        await conn.execute(
            """INSERT INTO notifications (id, device_id, network_id, notification, "timestamp")
               VALUES (1, 'd2', $1, 'future', '10000-01-01T00:00:00Z')""",
            world.n2,
        )
    finally:
        await conn.close()
    assert await peer.subscribe(networkIds=[world.n2], timestamp="2000-01-01T00:00:00Z")
    future = (await peer.push())["notification"]
    assert (future["notification"], future["timestamp"]) == ("future", "9999-12-31T23:59:59.999Z")
    assert await peer.subscribe(deviceId="d1", timestamp="2000-01-01T00:00:00Z")
    assert (await peer.push())["notification"]["notification"] == "before"
    await storage_goes_on(peer, clean_db, 3)
    assert (await peer.push())["notification"]["notification"] == "after"


async def test_a_frame_of_exactly_the_limit_is_accepted(make_client: AppFactory) -> None:
    """The README says "up to GATEWAY_WS_MAX_MESSAGE_BYTES (64 KiB)": 65,536 bytes pass, one
    more closes with 1009."""
    client = await make_client()
    world = await build_world(client)
    peer = await connect(client, world.admin)

    def frame(size: int) -> bytes:
        head = b'{"action":"server/info","requestId":"big","pad":"'
        return head + b"x" * (size - len(head) - 2) + b'"}'

    await peer.ws.send_bytes(frame(65_536))
    assert (await peer.reply("big"))["status"] == "success"
    await peer.ws.send_str(frame(65_536).decode())
    assert (await peer.reply("big"))["status"] == "success"
    await peer.ws.send_bytes(frame(65_537))
    assert await peer.closed() == (1009, "")


async def test_sustained_excess_over_the_rate_closes_4029(make_client: AppFactory) -> None:
    """10x the rate for up to 3 s: a token now and then must not reset the count of
    rejections, so the session is closed once burst + 1 requests were refused."""
    client = await make_client(ws_rate=100, ws_burst=20)
    world = await build_world(client)
    peer = await connect(client, world.admin)
    deadline = time.monotonic() + 3
    with contextlib.suppress(ConnectionError):
        while time.monotonic() < deadline and not peer.ws.closed:
            for _ in range(10):
                await peer.ws.send_bytes(b'{"action":"server/info"}')
            await asyncio.sleep(0.01)
    code, reason = await peer.closed()
    assert (code, reason) == (4029, "rate limit exceeded")


async def test_invalid_utf8_in_a_text_frame_closes_1007_and_in_a_binary_frame_gets_a_400(
    make_client: AppFactory,
) -> None:
    client = await make_client()
    world = await build_world(client)
    peer = await connect(client, world.admin)
    await peer.ws.send_bytes(b'{"action": "server/info", "requestId": "\xff"}')
    assert await peer.reply(None) == {
        "action": None,
        "requestId": None,
        "status": "error",
        "code": 400,
        "error": "Malformed JSON",
    }
    await peer.ws.send_frame(b'{"action": "server/info", "requestId": "\xff"}', WSMsgType.TEXT)
    assert await peer.closed() == (1007, "")


async def test_a_client_close_is_answered_with_1000(make_client: AppFactory) -> None:
    client = await make_client()
    world = await build_world(client)
    peer = await connect(client, world.admin)
    await peer.ws.close(code=4500, message=b"bye")
    assert peer.ws.close_code == 1000
