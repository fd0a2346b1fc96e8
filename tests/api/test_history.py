"""REST history: a device's notifications and commands by page (since, until, names, limit,
cursor, order) and by long poll (waitTimeout), with the device's rights."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from gateway.api.routing import REST_KEY
from gateway.app import WIRING_KEY
from tests.conftest import bearer, wait_for
from tests.realtime.helpers import (
    QUIET,
    Peer,
    World,
    build_world,
    connect,
    insert_big,
    insert_notifications,
    mint,
    rest,
)
from tests.support.http import expect_error


@pytest.fixture
async def world(client: Any) -> World:
    return await build_world(client)


async def _error(world: World, path: str, token: str, status: int) -> str:
    error = await rest(world.client, "GET", path, token, status)
    assert set(error) == {"message", "request_id"}
    message: str = error["message"]
    return message


STAMPS = [f"2026-11-30T10:00:0{i}.000Z" for i in range(5)]
NAMES = ["temp", "hum", "temp", "hum", "temp"]


async def _seed(peer: Peer) -> list[dict[str, Any]]:
    """Five notifications of d1 at known times; returns them as the history shows them."""
    return await insert_notifications(peer, list(zip(STAMPS, NAMES, strict=True)))


async def test_notifications_by_page_with_a_cursor(world: World) -> None:
    items = await _seed(await connect(world.client, world.admin))
    path = "/v1/devices/d1/notifications"
    # Acknowledged items are listed at once, written or not.
    assert await rest(world.client, "GET", path, world.alice, 200) == {
        "notifications": items,
        "cursor": None,
    }
    first = await rest(world.client, "GET", f"{path}?limit=2", world.alice, 200)
    assert first["notifications"] == items[:2]
    second = await rest(
        world.client, "GET", f"{path}?limit=2&cursor={first['cursor']}", world.alice, 200
    )
    assert second["notifications"] == items[2:4]
    third = await rest(
        world.client, "GET", f"{path}?limit=2&cursor={second['cursor']}", world.alice, 200
    )
    assert third == {"notifications": items[4:], "cursor": None}
    newest = await rest(world.client, "GET", f"{path}?order=desc&limit=3", world.alice, 200)
    assert newest["notifications"] == items[:1:-1]
    older = await rest(
        world.client,
        "GET",
        f"{path}?order=desc&limit=3&cursor={newest['cursor']}",
        world.alice,
        200,
    )
    assert older == {"notifications": items[1::-1], "cursor": None}


async def test_notifications_filtered_by_time_and_name(world: World) -> None:
    items = await _seed(await connect(world.client, world.admin))
    path = "/v1/devices/d1/notifications"
    window = f"since={STAMPS[0]}&until={STAMPS[3]}"
    assert (await rest(world.client, "GET", f"{path}?{window}", world.admin, 200))[
        "notifications"
    ] == items[1:4]
    assert (await rest(world.client, "GET", f"{path}?names=temp", world.admin, 200))[
        "notifications"
    ] == [items[0], items[2], items[4]]
    assert (await rest(world.client, "GET", f"{path}?names=hum,,nope", world.admin, 200))[
        "notifications"
    ] == [items[1], items[3]]
    assert await rest(world.client, "GET", "/v1/devices/d3/notifications", world.admin, 200) == {
        "notifications": [],
        "cursor": None,
    }


async def test_commands_by_page_and_status(world: World) -> None:
    peer = await connect(world.client, world.admin)
    ids = []
    for name in ("on", "off"):
        body = await peer.ok("command/insert", deviceId="d2", command={"command": name})
        ids.append(body["command"]["id"])
    await peer.ok(
        "command/update", deviceId="d2", commandId=ids[0], command={"status": "done", "result": 1}
    )
    listed = await rest(world.client, "GET", "/v1/devices/d2/commands", world.bob, 200)
    assert [(c["id"], c["command"], c["status"], c["result"]) for c in listed["commands"]] == [
        (ids[0], "on", "done", 1),
        (ids[1], "off", None, None),
    ]
    assert set(listed["commands"][0]) == {
        "id",
        "deviceId",
        "networkId",
        "deviceTypeId",
        "userId",
        "command",
        "parameters",
        "lifetime",
        "timestamp",
        "lastUpdated",
        "status",
        "result",
    }
    done = await rest(world.client, "GET", "/v1/devices/d2/commands?status=done", world.bob, 200)
    assert [c["id"] for c in done["commands"]] == [ids[0]]


async def test_history_needs_the_device_rights(world: World) -> None:
    assert (
        await _error(world, "/v1/devices/d2/notifications", world.alice, 403)
        == "Device d2 is outside the token's scope"
    )
    assert (
        await _error(world, "/v1/devices/d2/commands/poll?waitTimeout=0", world.alice, 403)
        == "Device d2 is outside the token's scope"
    )
    assert (
        await _error(world, "/v1/devices/nope/commands", world.admin, 404)
        == "Device nope not found"
    )
    only_commands = await mint(world.client, world.alice, actions=["GetDeviceCommand"])
    assert (
        await _error(world, "/v1/devices/d1/notifications", only_commands, 403)
        == "Missing permission: GetDeviceNotification"
    )
    assert (
        await _error(world, "/v1/devices/d1/notifications/poll", only_commands, 403)
        == "Missing permission: GetDeviceNotification"
    )
    only_d3 = await mint(world.client, world.alice, deviceIds=["d3"])
    assert (
        await _error(world, "/v1/devices/d1/notifications", only_d3, 403)
        == "Device d1 is outside the token's scope"
    )
    await rest(world.client, "GET", "/v1/devices/d3/notifications", only_d3, 200)


async def test_poll_waits_for_the_next_item(world: World) -> None:
    peer = await connect(world.client, world.admin)
    now = (await peer.ok("server/info"))["info"]["serverTimestamp"]
    started = time.monotonic()
    poll = asyncio.ensure_future(
        rest(
            world.client,
            "GET",
            f"/v1/devices/d1/notifications/poll?waitTimeout=10&since={now}",
            world.alice,
            200,
        )
    )
    await asyncio.sleep(QUIET)  # nothing to answer yet: the poll keeps waiting
    assert not poll.done()
    body = await peer.ok("notification/insert", deviceId="d1", notification={"notification": "x"})
    answer = await asyncio.wait_for(poll, 5)
    assert time.monotonic() - started < 5
    assert [n["id"] for n in answer["notifications"]] == [body["notification"]["id"]]
    cursor = answer["cursor"]
    # From that cursor: nothing new yet; waitTimeout=0 answers at once, cursor unchanged.
    assert await rest(
        world.client,
        "GET",
        f"/v1/devices/d1/notifications/poll?waitTimeout=0&cursor={cursor}",
        world.alice,
        200,
    ) == {"notifications": [], "cursor": cursor}


async def test_poll_answers_at_once_when_items_are_there(world: World) -> None:
    items = await _seed(await connect(world.client, world.admin))
    answer = await rest(
        world.client,
        "GET",
        f"/v1/devices/d1/notifications/poll?since={STAMPS[2]}&limit=1",
        world.alice,
        200,
    )
    assert answer["notifications"] == [items[3]]
    rest_of = await rest(
        world.client,
        "GET",
        f"/v1/devices/d1/notifications/poll?cursor={answer['cursor']}",
        world.alice,
        200,
    )
    assert rest_of["notifications"] == [items[4]]


async def test_poll_without_news_returns_empty_after_the_timeout(world: World) -> None:
    await _seed(await connect(world.client, world.admin))
    started = time.monotonic()
    answer = await rest(
        world.client, "GET", "/v1/devices/d1/commands/poll?waitTimeout=1", world.alice, 200
    )
    assert answer == {"commands": [], "cursor": None}
    assert 0.9 < time.monotonic() - started < 4


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("limit=0", 422, "limit: must be at least 1"),
        ("limit=1001", 422, "limit: must be at most 1000"),
        ("limit=x", 422, "limit: must be an integer"),
        ("cursor=abc", 422, "cursor: not a cursor this server handed out: 'abc'"),
        ("cursor=1-2-3", 422, "cursor: not a cursor this server handed out: '1-2-3'"),
        ("cursor=" + "9" * 65, 422, "cursor: must be at most 64 characters"),
        ("since=yesterday", 422, "since: not an ISO-8601 timestamp: 'yesterday'"),
        ("until=2026-13-01", 422, "until: not an ISO-8601 timestamp: '2026-13-01'"),
        ("since=" + "1" * 65, 422, "since: must be at most 64 characters"),
        ("names=" + ",".join(["a"] * 257), 422, "names: at most 256 names"),
        ("names=" + "a" * 257, 422, "names: a name is at most 256 characters"),
        ("names=a%00", 422, "names: must not contain NUL characters"),
        ("order=sideways", 422, "order: must be one of asc, desc"),
        ("waitTimeout=5", 400, "unknown query parameter: waitTimeout"),
        ("status=done", 400, "unknown query parameter: status"),
    ],
)
async def test_listing_refuses_hostile_parameters(
    world: World, query: str, status: int, message: str
) -> None:
    path = f"/v1/devices/d1/notifications?{query}"
    assert await _error(world, path, world.admin, status) == message


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("waitTimeout=61", 422, "waitTimeout: must be at most 60"),
        ("waitTimeout=-1", 422, "waitTimeout: must be at least 0"),
        ("waitTimeout=1e3", 422, "waitTimeout: must be an integer"),
        ("limit=1001", 422, "limit: must be at most 1000"),
        ("until=2026-11-30T10:00:00Z", 400, "unknown query parameter: until"),
        ("order=desc", 400, "unknown query parameter: order"),
    ],
)
async def test_poll_refuses_hostile_parameters(
    world: World, query: str, status: int, message: str
) -> None:
    path = f"/v1/devices/d1/commands/poll?{query}"
    assert await _error(world, path, world.admin, status) == message


async def test_history_is_in_the_openapi_document(world: World) -> None:
    document = await rest(world.client, "GET", "/v1/openapi.json", world.admin, 200)
    for key in ("notifications", "commands"):
        listing = document["paths"][f"/v1/devices/{{id}}/{key}"]["get"]
        poll = document["paths"][f"/v1/devices/{{id}}/{key}/poll"]["get"]
        assert listing["tags"] == poll["tags"] == ["history"]
        assert {"since", "until", "names", "limit", "cursor", "order"} <= {
            p["name"] for p in listing["parameters"]
        }
        assert {"since", "names", "limit", "cursor", "waitTimeout"} <= {
            p["name"] for p in poll["parameters"]
        }


async def test_long_polls_waiting_at_once_are_bounded_per_user(make_client: Any) -> None:
    """Every waiting poll wakes at each arrival: one user's polls held open by the hundred
    would make each item cost the instance that many wake-ups. Beyond the bound: 429."""
    client = await make_client(poll_max_waiting=2)
    world = await build_world(client)
    history = client.app[REST_KEY].dh.history
    peer = await connect(client, world.admin)
    now = (await peer.ok("server/info"))["info"]["serverTimestamp"]
    path = f"/v1/devices/d1/notifications/poll?waitTimeout=10&since={now}"
    polls = [asyncio.ensure_future(rest(client, "GET", path, world.alice, 200)) for _ in range(2)]
    await wait_for(lambda: history._waiting.get(world.alice_id) == 2)
    response = await client.get(path, headers=bearer(world.alice))
    await expect_error(response, 429, "Too many long polls waiting for this user (at most 2)")
    assert response.headers["Retry-After"] == "1"
    # Another user, and an answer that needs no wait, are not concerned.
    bob = await rest(
        client, "GET", "/v1/devices/d2/notifications/poll?waitTimeout=0", world.bob, 200
    )
    assert bob["notifications"] == []
    body = await peer.ok("notification/insert", deviceId="d1", notification={"notification": "x"})
    for answer in await asyncio.wait_for(asyncio.gather(*polls), 5):
        assert [n["id"] for n in answer["notifications"]] == [body["notification"]["id"]]
    assert history._waiting == {}


async def test_a_page_beyond_the_payload_budget_is_refused_and_fewer_items_are_served(
    make_client: Any, clean_db: str
) -> None:
    """A page's payloads were read whole, however big: 1,000 items of 1 MiB (a REST body) was
    1 GB in memory for one request. Counted before reading, pending items and stored alike."""
    # Nothing is written until the test flushes: the first check counts pending items only.
    client = await make_client(history_page_max_bytes=50_000, persist_interval=60.0)
    world = await build_world(client)
    peer = await connect(client, world.admin)
    await insert_big(peer, ["n0", "n1", "n2"], 20_000)
    path = "/v1/devices/d1/notifications"
    alice = await connect(client, world.alice)

    async def refused(size: int) -> None:
        expected = (
            f"the 3 items asked for hold {size} bytes of payload, more than "
            "GATEWAY_HISTORY_PAGE_MAX_BYTES (50000) allows in one reply; ask for fewer"
        )
        assert await _error(world, path, world.alice, 422) == expected
        reply = await alice.request("notification/list", deviceId="d1")
        assert (reply["status"], reply["code"], reply["error"]) == ("error", 422, expected)
        page = await rest(world.client, "GET", f"{path}?limit=2", world.alice, 200)
        assert [item["notification"] for item in page["notifications"]] == ["n0", "n1"]
        listed = await alice.ok("notification/list", deviceId="d1", take=2)
        assert len(listed["notifications"]) == 2

    await refused(3 * (2 + 20_011))  # pending: as the gateway encodes them
    store = client.app[WIRING_KEY].realtime.messages.messages
    await store.flush()
    assert store.pending_count == 0
    await refused(3 * (2 + 20_012))  # stored: as PostgreSQL prints jsonb
