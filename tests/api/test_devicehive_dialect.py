"""DeviceHive's REST dialect under /api/rest: DeviceHive's paths, bodies without a Content-Type,
DeviceHive's JSON shapes and error body, and the same rights as /v1."""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

import orjson
import pytest

from gateway.clock import parse_iso
from tests.conftest import bearer
from tests.realtime.helpers import PASSWORD, World, build_world, connect

BASE = "/api/rest"


@pytest.fixture
async def world(client: Any) -> World:
    return await build_world(client)


async def call(
    world: World,
    method: str,
    path: str,
    token: str | None,
    expected: int,
    body: Any = None,
    params: dict[str, str] | None = None,
) -> Any:
    """A dialect call as DeviceHive's client makes it: a JSON body with no Content-Type."""
    response = await world.client.request(
        method,
        BASE + path,
        data=None if body is None else orjson.dumps(body),
        headers=None if token is None else bearer(token),
        params=params,
    )
    text = await response.text()
    assert response.status == expected, (response.status, text)
    return orjson.loads(text) if text else None


async def error(
    world: World, method: str, path: str, token: str | None, status: int, **kw: Any
) -> str:
    body = await call(world, method, path, token, status, **kw)
    assert set(body) == {"error", "message", "request_id"} and body["error"] == status, body
    message: str = body["message"]
    return message


async def test_tokens_and_info(world: World) -> None:
    pair = await call(
        world, "POST", "/token", None, 201, {"login": "alice@example.com", "password": PASSWORD}
    )
    assert set(pair) == {"accessToken", "refreshToken"}
    refreshed = await call(
        world, "POST", "/token/refresh", None, 201, {"refreshToken": pair["refreshToken"]}
    )
    assert set(refreshed) == {"accessToken"}
    assert (await call(world, "GET", "/user/current", refreshed["accessToken"], 200))[
        "login"
    ] == "alice@example.com"
    assert (
        await error(
            world,
            "POST",
            "/token",
            None,
            401,
            body={"login": "alice@example.com", "password": "nope-nope"},
        )
        == "Invalid email or password"
    )
    assert (
        await error(world, "POST", "/token/refresh", None, 401, body={"refreshToken": "x"})
        == "Invalid token"
    )
    minted = await call(
        world,
        "POST",
        "/token/create",
        world.alice,
        201,
        {"userId": world.alice_id, "actions": ["GetDevice"]},
    )
    assert set(minted) == {"accessToken", "refreshToken"}
    assert (
        await error(world, "POST", "/token/create", world.alice, 403, body={"userId": world.bob_id})
        == "Minting a token for another user needs ManageUser"
    )
    info = await call(world, "GET", "/info", None, 200)
    assert set(info) == {"apiVersion", "serverTimestamp", "restServerUrl", "webSocketServerUrl"}
    assert info["restServerUrl"].endswith("/api/rest")
    assert set(await call(world, "GET", "/info/config/cluster", world.alice, 200)) == {
        "instanceId",
        "bus",
    }


async def test_devices(world: World) -> None:
    assert [d["id"] for d in await call(world, "GET", "/device", world.alice, 200)] == ["d1", "d3"]
    assert [
        d["id"]
        for d in await call(world, "GET", "/device", world.admin, 200, params={"networkId": "2"})
    ] == ["d2"]
    assert await call(world, "GET", "/device/d1", world.alice, 200) == {
        "id": "d1",
        "name": "d1",
        "data": None,
        "networkId": world.n1,
        "deviceTypeId": 1,
        "isBlocked": False,
    }
    assert (
        await error(world, "GET", "/device/d2", world.alice, 403)
        == "Device d2 is outside the token's scope"
    )
    # DeviceHive's client sends null for the fields it leaves alone.
    await call(
        world,
        "PUT",
        "/device/d9",
        world.alice,
        204,
        {"name": "nine", "networkId": None, "deviceTypeId": 2, "isBlocked": None, "data": {"a": 1}},
    )
    assert await call(world, "GET", "/device/d9", world.alice, 200) == {
        "id": "d9",
        "name": "nine",
        "data": {"a": 1},
        "networkId": world.n1,
        "deviceTypeId": 2,
        "isBlocked": False,
    }
    assert (
        await error(world, "PUT", "/device/d9", world.alice, 422, body={"deviceTypeId": 99})
        == "deviceTypeId: no such device type: 99"
    )
    await call(world, "DELETE", "/device/d9", world.alice, 204)
    assert await error(world, "GET", "/device/d9", world.alice, 404) == "Device d9 not found"
    assert (
        await error(world, "DELETE", "/device/d2", world.alice, 403)
        == "Device d2 is outside the token's scope"
    )


async def test_notifications_and_commands(world: World) -> None:
    sent = await call(
        world,
        "POST",
        "/device/d1/notification",
        world.alice,
        201,
        {"notification": "temp", "parameters": {"c": 1}},
    )
    assert set(sent) == {"id", "timestamp"}
    listed = await call(world, "GET", "/device/d1/notification", world.alice, 200)
    assert [(n["id"], n["notification"], n["parameters"]) for n in listed] == [
        (sent["id"], "temp", {"c": 1})
    ]
    assert (await call(world, "GET", f"/device/d1/notification/{sent['id']}", world.alice, 200))[
        "id"
    ] == sent["id"]
    assert (
        await error(world, "GET", "/device/d3/notification/" + str(sent["id"]), world.alice, 404)
        == f"Notification {sent['id']} not found for device d3"
    )
    command = await call(
        world,
        "POST",
        "/device/d1/command",
        world.alice,
        201,
        {"command": "set", "parameters": {"c": 2}},
    )
    assert (
        set(command) == {"id", "timestamp", "lastUpdated", "userId"}
        and command["userId"] == world.alice_id
    )
    await call(
        world,
        "PUT",
        f"/device/d1/command/{command['id']}",
        world.alice,
        204,
        {"status": "done", "result": {"ok": True}},
    )
    got = await call(world, "GET", f"/device/d1/command/{command['id']}", world.alice, 200)
    assert (got["status"], got["result"]) == ("done", {"ok": True})
    assert [
        c["id"]
        for c in await call(
            world, "GET", "/device/d1/command", world.alice, 200, params={"status": "done"}
        )
    ] == [command["id"]]
    assert (
        await error(world, "POST", "/device/d2/command", world.alice, 403, body={"command": "x"})
        == "Device d2 is outside the token's scope"
    )
    assert (
        await error(world, "PUT", "/device/d1/command/999", world.alice, 404, body={"status": "x"})
        == "Command 999 not found for device d1"
    )


async def test_polls(world: World) -> None:
    admin = await connect(world.client, world.admin)
    before = (await call(world, "GET", "/info", None, 200))["serverTimestamp"]
    # A poll's timestamp names a whole millisecond: what is inserted in that same millisecond
    # is not after it (a fast machine answers /info and the insert within one).
    while time.time() < parse_iso(before) + 0.001:
        await asyncio.sleep(0.0005)
    inserted = await admin.ok(
        "notification/insert", deviceId="d1", notification={"notification": "a"}
    )
    await admin.ok("notification/insert", deviceId="d2", notification={"notification": "b"})
    mine = await call(
        world,
        "GET",
        "/device/notification/poll",
        world.alice,
        200,
        params={"timestamp": before, "waitTimeout": "0"},
    )
    assert [n["id"] for n in mine] == [inserted["notification"]["id"]]  # alice reaches d1, not d2
    both = await call(
        world,
        "GET",
        "/device/notification/poll",
        world.admin,
        200,
        params={"timestamp": before, "networkIds": f"{world.n1},{world.n2}", "waitTimeout": "0"},
    )
    assert [n["deviceId"] for n in both] == ["d1", "d2"]
    # The timestamp of the last item received: nothing follows it (no item comes back twice).
    again = await call(
        world,
        "GET",
        "/device/d1/notification/poll",
        world.alice,
        200,
        params={"timestamp": mine[-1]["timestamp"], "waitTimeout": "0"},
    )
    assert again == []
    assert (
        await error(
            world,
            "GET",
            "/device/notification/poll",
            world.alice,
            403,
            params={"networkIds": str(world.n2), "waitTimeout": "0"},
        )
        == f"networkIds outside the token's scope: {world.n2}"
    )
    command = await admin.ok("command/insert", deviceId="d1", command={"command": "go"})
    updates = await call(
        world,
        "GET",
        "/device/command/poll",
        world.alice,
        200,
        params={"timestamp": before, "returnUpdatedCommands": "True", "waitTimeout": "0"},
    )
    assert updates == []  # inserted, not updated yet
    await admin.ok(
        "command/update",
        deviceId="d1",
        commandId=command["command"]["id"],
        command={"status": "done"},
    )
    updates = await call(
        world,
        "GET",
        "/device/d1/command/poll",
        world.alice,
        200,
        params={"timestamp": before, "returnUpdatedCommands": "true", "waitTimeout": "1"},
    )
    assert [(c["id"], c["status"]) for c in updates] == [(command["command"]["id"], "done")]


async def test_users_networks_device_types_and_configuration(world: World) -> None:
    current = await call(world, "GET", "/user/current", world.alice, 200)
    assert (current["id"], current["login"], current["role"], current["status"]) == (
        world.alice_id,
        "alice@example.com",
        1,
        0,
    )
    assert await call(world, "GET", f"/user/{world.alice_id}", world.alice, 200) == current
    assert (
        await error(world, "GET", f"/user/{world.bob_id}", world.alice, 403)
        == "Missing permission: ManageUser"
    )
    assert await error(world, "GET", "/user", world.alice, 403) == "Missing permission: ManageUser"
    assert [
        u["login"]
        for u in await call(world, "GET", "/user", world.admin, 200, params={"role": "1"})
    ] == ["alice@example.com", "bob@example.com"]
    assert await call(world, "GET", "/network", world.alice, 200) == [
        {"id": world.n1, "name": "north", "description": None}
    ]
    assert (
        await error(world, "GET", f"/network/{world.n2}", world.alice, 403)
        == f"Network {world.n2} is outside the token's scope"
    )
    assert [
        d["id"]
        for d in (await call(world, "GET", f"/network/{world.n1}", world.alice, 200))["devices"]
    ] == ["d1", "d3"]
    assert (
        await error(world, "POST", "/network", world.alice, 403, body={"name": "x"})
        == "Missing permission: ManageNetwork"
    )
    created = await call(
        world, "POST", "/network", world.admin, 201, {"name": "east", "description": None}
    )
    assert set(created) == {"id"}
    assert [t["name"] for t in await call(world, "GET", "/devicetype", world.alice, 200)] == [
        "thermometer",
        "relay",
    ]
    assert (await call(world, "GET", "/devicetype/2", world.alice, 200))["name"] == "relay"
    assert (
        await error(world, "POST", "/devicetype", world.alice, 403, body={"name": "x"})
        == "Missing permission: ManageDeviceType"
    )
    assert set(await call(world, "POST", "/devicetype", world.admin, 201, {"name": "pump"})) == {
        "id"
    }
    assert (await call(world, "PUT", "/configuration/site", world.admin, 200, {"value": "v"}))[
        "value"
    ] == "v"
    assert await call(world, "GET", "/configuration/site", world.admin, 200) == {
        "name": "site",
        "value": "v",
        "entityVersion": 0,
    }
    assert (
        await error(world, "GET", "/configuration/site", world.alice, 403)
        == "Missing permission: ManageConfiguration"
    )
    await call(world, "DELETE", "/configuration/site", world.admin, 204)


@pytest.mark.parametrize(
    ("method", "path", "kw", "status", "message"),
    [
        ("GET", "/device", {"params": {"take": "0"}}, 422, "take: must be at least 1"),
        ("GET", "/device", {"params": {"skip": "-1"}}, 422, "skip: must be at least 0"),
        (
            "GET",
            "/device",
            {"params": {"sortField": "data"}},
            422,
            "sortField: must be one of id, name",
        ),
        ("GET", "/device", {"params": {"flavour": "x"}}, 400, "unknown query parameter: flavour"),
        ("GET", "/device/a%20b", {}, 422, "id: must match [A-Za-z0-9_-]{1,64}"),
        (
            "GET",
            "/device/notification/poll",
            {"params": {"waitTimeout": "61"}},
            422,
            "waitTimeout: must be at most 60",
        ),
        (
            "GET",
            "/device/notification/poll",
            {"params": {"waitTimeout": "-1"}},
            422,
            "waitTimeout: must be at least 0",
        ),
        (
            "GET",
            "/device/notification/poll",
            {"params": {"limit": "1001"}},
            422,
            "limit: must be at most 1000",
        ),
        (
            "GET",
            "/device/notification/poll",
            {"params": {"networkIds": "1,x"}},
            422,
            "networkIds: must be a comma-separated list of ids (at most 1000)",
        ),
        (
            "GET",
            "/device/notification/poll",
            {"params": {"timestamp": "later"}},
            422,
            "timestamp: not an ISO-8601 timestamp: 'later'",
        ),
        (
            "GET",
            "/device/notification/poll",
            {"params": {"names": ",".join(["n"] * 257)}},
            422,
            "names: at most 256 names of at most 256 characters",
        ),
        (
            "GET",
            "/device/command/poll",
            {"params": {"returnUpdatedCommands": "maybe"}},
            422,
            "returnUpdatedCommands: must be true or false",
        ),
        (
            "GET",
            "/device/d1/notification",
            {"params": {"sortField": "x"}},
            422,
            "sortField: must be one of timestamp, notification",
        ),
        (
            "GET",
            "/device/d1/notification",
            {"params": {"skip": "10001"}},
            422,
            "skip: must be at most 10000",
        ),
        ("GET", "/device/d1/notification/0", {}, 422, "itemId: must be at least 1"),
        (
            "POST",
            "/device/d1/notification",
            {"body": {"parameters": 1}},
            422,
            "body: missing field: notification",
        ),
        (
            "POST",
            "/device/d1/notification",
            {"body": {"notification": "x" * 257}},
            422,
            "notification: must be at most 256 characters",
        ),
        (
            "POST",
            "/device/d1/command",
            {"body": {"command": "x", "lifetime": -1}},
            422,
            "lifetime: must be at least 0",
        ),
        (
            "PUT",
            "/device/d1",
            {"body": ["not", "an", "object"]},
            422,
            "body: must be a JSON object",
        ),
        (
            "POST",
            "/device/d1/notification",
            {"body": {"notification": "n", "timestamp": "2999-01-01T00:00:00Z"}},
            422,
            "timestamp: must not be more than 24 hours ahead of the server's clock",
        ),
        (
            "POST",
            "/device/d1/command",
            {"body": {"command": "x", "lifetime": 2**31}},
            422,
            "lifetime: must be at most 2147483647",
        ),
        (
            "GET",
            "/device/d1/notification",
            {"params": {"start": "10000-01-01T00:00:00Z"}},
            422,
            "start: not an ISO-8601 timestamp: '10000-01-01T00:00:00Z'",
        ),
        ("GET", "/user", {"params": {"role": "9"}}, 422, "role: must be at most 1"),
        (
            "GET",
            "/network",
            {"params": {"namePattern": "x" * 201}},
            422,
            "namePattern: must be at most 200 characters",
        ),
        ("GET", "/configuration/a%20b", {}, 422, "name: must match [A-Za-z0-9._-]{1,128}"),
    ],
)
async def test_hostile_requests_get_precise_errors(
    world: World, method: str, path: str, kw: dict[str, Any], status: int, message: str
) -> None:
    assert await error(world, method, path, world.admin, status, **kw) == message


async def test_malformed_and_oversized_bodies_and_missing_tokens(world: World) -> None:
    response = await world.client.post(
        BASE + "/device/d1/notification", data=b"{nope", headers=bearer(world.admin)
    )
    body = await response.json()
    assert (
        response.status == 400
        and body["error"] == 400
        and body["message"].startswith("Malformed JSON")
    )
    huge = orjson.dumps({"notification": "n", "parameters": "x" * 2_000_000})
    response = await world.client.post(
        BASE + "/device/d1/notification", data=io.BytesIO(huge), headers=bearer(world.admin)
    )
    assert response.status == 413
    assert (
        await error(world, "GET", "/device", None, 401)
        == "Missing Authorization header (expected: Bearer <access token>)"
    )
    assert await error(world, "GET", "/device", "garbage", 401) == "Invalid token"
