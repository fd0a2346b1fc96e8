"""Plugins: a ManagePlugin holder registers a topic and gets a token pair bound to it; the
plugin's socket receives exactly its topic's items, can do nothing else, and closes when the
plugin is deleted."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import bearer
from tests.realtime.helpers import World, build_world, connect, insert, rest

TOPIC = {"networkIds": [1], "names": ["temp", "door"]}


@pytest.fixture
async def world(client: Any) -> World:
    return await build_world(client)


async def _plugin(world: World, name: str = "archiver", **topic: Any) -> dict[str, Any]:
    body = {"name": name, "description": "keeps temperatures", "topic": topic or TOPIC}
    created: dict[str, Any] = await rest(
        world.client, "POST", "/v1/auth/token/plugin/create", world.admin, 201, body
    )
    return created


async def _error(
    world: World, method: str, path: str, token: str, status: int, body: Any = None
) -> str:
    error = await rest(world.client, method, path, token, status, body)
    assert set(error) == {"message", "request_id"}
    message: str = error["message"]
    return message


async def test_registering_a_plugin_returns_it_and_a_token_pair(world: World) -> None:
    created = await _plugin(world)
    assert created["plugin"] == {
        "id": 1,
        "name": "archiver",
        "description": "keeps temperatures",
        "userId": 1,
        "topic": {
            "networkIds": [1],
            "deviceTypeIds": None,
            "names": ["door", "temp"],
            "notifications": True,
            "commands": False,
        },
        "createdAt": created["plugin"]["createdAt"],
    }
    assert {"access_token", "refresh_token", "token_type", "expires_in"} <= set(created)
    assert await rest(world.client, "GET", "/v1/plugins", world.admin, 200) == {
        "plugins": [created["plugin"]]
    }
    payload = await rest(
        world.client,
        "GET",
        f"/v1/auth/token/plugin/authenticate?token={created['access_token']}",
        world.alice,  # no token is needed; a client's is ignored
        200,
    )
    assert payload == {
        "userId": 1,
        "pluginId": 1,
        "topic": created["plugin"]["topic"],
        "actions": ["GetDeviceNotification"],
        "networkIds": [1],
        "expiration": payload["expiration"],
    }


async def test_the_plugin_receives_its_topic_and_nothing_else(world: World) -> None:
    created = await _plugin(world)
    plugin = await connect(world.client, created["access_token"])
    everything = await plugin.subscribe()
    admin = await connect(world.client, world.admin)
    inside = await insert(admin, "d1", "temp", {"c": 20})
    await insert(admin, "d1", "humidity")  # a name outside the topic
    await insert(admin, "d2", "temp")  # a network outside the topic
    door = await insert(admin, "d3", "door")
    received = [await plugin.push(), await plugin.push()]
    assert [(p["subscriptionId"], p["notification"]["id"]) for p in received] == [
        (everything, inside["id"]),
        (everything, door["id"]),
    ]
    await plugin.no_push()
    await plugin.fails(
        "notification/subscribe",
        403,
        "names outside the plugin's topic: humidity",
        names=["humidity"],
    )
    await plugin.fails(
        "notification/subscribe", 403, "networkIds outside the token's scope: 2", networkIds=[2]
    )
    await plugin.fails(
        "notification/subscribe", 403, "Device d2 is outside the token's scope", deviceId="d2"
    )
    await plugin.fails("command/subscribe", 403, "Missing permission: GetDeviceCommand")


@pytest.mark.parametrize(
    ("action", "fields"),
    [
        ("device/get", {"deviceId": "d1"}),
        ("device/list", {}),
        ("notification/insert", {"deviceId": "d1", "notification": {"notification": "temp"}}),
        ("notification/list", {"deviceId": "d1"}),
        ("command/insert", {"deviceId": "d1", "command": {"command": "x"}}),
        ("token/create", {"payload": {}}),
        ("token/refresh", {"refreshToken": "x"}),
        ("token", {"login": "a", "password": "b"}),
        ("user/getCurrent", {}),
        ("network/list", {}),
        ("cluster/info", {}),
    ],
)
async def test_every_other_action_is_refused(
    world: World, action: str, fields: dict[str, Any]
) -> None:
    plugin = await connect(world.client, (await _plugin(world))["access_token"])
    await plugin.fails(
        action, 403, f"A plugin's token may only subscribe to its topic, not {action}", **fields
    )
    assert await plugin.is_open()


async def test_rest_refuses_a_plugin_token(world: World) -> None:
    token = (await _plugin(world))["access_token"]
    assert (
        await _error(world, "GET", "/v1/devices", token, 403)
        == "A plugin's token may only subscribe to its topic, not GET /v1/devices"
    )
    assert (
        await _error(world, "GET", "/v1/auth/me", token, 403)
        == "A plugin's token may only subscribe to its topic, not GET /v1/auth/me"
    )
    response = await world.client.get("/api/rest/device/d1", headers=bearer(token))
    assert response.status == 403
    assert (await response.json())["message"] == (
        "A plugin's token may only subscribe to its topic, not GET /api/rest/device/{id}"
    )


async def test_deleting_the_plugin_closes_its_socket(world: World) -> None:
    created = await _plugin(world)
    plugin = await connect(world.client, created["access_token"])
    await plugin.subscribe()
    response = await world.client.delete("/v1/plugins/1", headers=bearer(world.admin))
    assert response.status == 204
    assert response.headers["X-Sessions-Closed"] == "1"
    assert (await plugin.closed())[0] == 4003
    assert (
        await _error(
            world,
            "GET",
            f"/v1/auth/token/plugin/authenticate?token={created['access_token']}",
            world.admin,
            401,
        )
        == "Token revoked"
    )
    assert await _error(world, "DELETE", "/v1/plugins/1", world.admin, 404) == "Plugin not found"
    assert await rest(world.client, "GET", "/v1/plugins", world.admin, 200) == {"plugins": []}


async def test_a_refreshed_plugin_token_is_still_the_plugin_s(world: World) -> None:
    created = await _plugin(world)
    pair = await rest(
        world.client,
        "POST",
        "/v1/auth/token/refresh",
        world.admin,
        200,
        {"refresh_token": created["refresh_token"]},
    )
    plugin = await connect(world.client, pair["access_token"])
    await plugin.fails(
        "device/list", 403, "A plugin's token may only subscribe to its topic, not device/list"
    )
    payload = await rest(
        world.client,
        "GET",
        f"/v1/auth/token/plugin/authenticate?token={pair['access_token']}",
        world.admin,
        200,
    )
    assert payload["pluginId"] == 1


async def test_plugin_authenticate_refuses_other_tokens(world: World) -> None:
    path = "/v1/auth/token/plugin/authenticate"
    assert await _error(world, "GET", f"{path}?token={world.alice}", world.admin, 401) == (
        "Not a plugin's token"
    )
    assert await _error(world, "GET", f"{path}?token=garbage", world.admin, 401) == "Invalid token"
    assert await _error(world, "GET", path, world.admin, 401) == (
        "Missing token (expected: ?token=<a plugin's access token>)"
    )
    assert await _error(world, "GET", f"{path}?token=" + "x" * 4097, world.admin, 422) == (
        "token: must be at most 4096 characters"
    )


async def test_only_a_manage_plugin_holder_registers_lists_and_deletes(world: World) -> None:
    body = {"name": "x", "topic": TOPIC}
    assert (
        await _error(world, "POST", "/v1/auth/token/plugin/create", world.alice, 403, body)
        == "Missing permission: ManagePlugin"
    )
    assert await _error(world, "GET", "/v1/plugins", world.alice, 403) == (
        "Missing permission: ManagePlugin"
    )
    await _plugin(world)
    assert await _error(world, "DELETE", "/v1/plugins/1", world.alice, 403) == (
        "Missing permission: ManagePlugin"
    )


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {"name": "p", "topic": {"notifications": False}},
            422,
            "topic: give notifications and/or commands",
        ),
        (
            {"name": "p", "topic": {"networkIds": []}},
            422,
            "topic.networkIds: must have at least 1 items",
        ),
        (
            {"name": "p", "topic": {"names": ["x" * 257]}},
            422,
            "topic.names[0]: must be at most 256 characters",
        ),
        (
            {"name": "p", "topic": {"deviceTypeIds": [0]}},
            422,
            "topic.deviceTypeIds[0]: must be at least 1",
        ),
        ({"name": "p", "topic": {"flavour": 1}}, 422, "topic: unknown field: flavour"),
        ({"name": "", "topic": {}}, 422, "name: must not be empty"),
        (
            {"name": "p", "topic": {"names": ["é" * 200, "è" * 200, "ê" * 200]}},
            422,
            "topic: at most 2048 bytes of JSON (it travels in every token)",
        ),
        ({"topic": {}}, 422, "body: missing field: name"),
        ({"name": "archiver", "topic": {}}, 409, "a plugin named 'archiver' already exists"),
    ],
)
async def test_registering_refuses_hostile_input(
    world: World, body: dict[str, Any], status: int, message: str
) -> None:
    await _plugin(world)
    assert (
        await _error(world, "POST", "/v1/auth/token/plugin/create", world.admin, status, body)
        == message
    )
