"""REST device types: CRUD with GetDeviceType / ManageDeviceType, DeviceHive's listing
parameters, and devices that must name an existing type."""

from __future__ import annotations

from typing import Any

import pytest

from tests.realtime.helpers import World, build_world, mint, put_device, rest


@pytest.fixture
async def world(client: Any) -> World:
    return await build_world(client)


async def _error(
    world: World, method: str, path: str, token: str, status: int, body: Any = None
) -> str:
    error = await rest(world.client, method, path, token, status, body)
    assert set(error) == {"message", "request_id"}
    message: str = error["message"]
    return message


THERMOMETER = {"id": 1, "name": "thermometer", "description": None}
RELAY = {"id": 2, "name": "relay", "description": None}


async def test_device_types_crud(world: World) -> None:
    created = await rest(
        world.client,
        "POST",
        "/v1/device-types",
        world.admin,
        201,
        {"name": "pump", "description": "water pumps"},
    )
    assert created == {"id": 3, "name": "pump", "description": "water pumps"}
    assert await rest(world.client, "GET", "/v1/device-types", world.admin, 200) == {
        "deviceTypes": [THERMOMETER, RELAY, created]
    }
    assert await rest(world.client, "GET", "/v1/device-types/3", world.admin, 200) == created
    renamed = await rest(
        world.client, "PATCH", "/v1/device-types/3", world.admin, 200, {"name": "Pump"}
    )
    assert renamed == {**created, "name": "Pump"}
    assert (
        await _error(world, "POST", "/v1/device-types", world.admin, 409, {"name": "RELAY"})
        == "a device type named 'RELAY' already exists"
    )
    assert (
        await _error(world, "PATCH", "/v1/device-types/3", world.admin, 409, {"name": "relay"})
        == "a device type named 'relay' already exists"
    )
    await rest(world.client, "DELETE", "/v1/device-types/3", world.admin, 204)
    assert (
        await _error(world, "GET", "/v1/device-types/3", world.admin, 404)
        == "Device type not found"
    )
    assert (
        await _error(world, "DELETE", "/v1/device-types/3", world.admin, 404)
        == "Device type not found"
    )
    assert (
        await _error(world, "PATCH", "/v1/device-types/3", world.admin, 404, {"name": "x"})
        == "Device type not found"
    )


async def test_a_device_type_in_use_is_not_deleted(world: World) -> None:
    assert (
        await _error(world, "DELETE", "/v1/device-types/1", world.admin, 409)
        == "Device type 1 is still used by devices; move or delete them first"
    )
    await rest(world.client, "PUT", "/v1/devices/d1", world.admin, 200, {"deviceTypeId": None})
    await rest(world.client, "DELETE", "/v1/device-types/1", world.admin, 204)


async def test_devices_must_name_an_existing_device_type(world: World) -> None:
    assert (
        await _error(
            world,
            "PUT",
            "/v1/devices/d9",
            world.admin,
            422,
            {"networkId": world.n1, "deviceTypeId": 99},
        )
        == "deviceTypeId: no such device type: 99"
    )
    assert (
        await _error(world, "PUT", "/v1/devices/d1", world.admin, 422, {"deviceTypeId": 5})
        == "deviceTypeId: no such device type: 5"
    )
    moved = await put_device(world.client, world.admin, "d9", world.n1, 2)
    assert moved["deviceTypeId"] == 2


async def test_clients_read_but_do_not_manage_device_types(world: World) -> None:
    assert await rest(world.client, "GET", "/v1/device-types/2", world.alice, 200) == RELAY
    assert (
        await _error(world, "POST", "/v1/device-types", world.alice, 403, {"name": "x"})
        == "Missing permission: ManageDeviceType"
    )
    assert (
        await _error(world, "PATCH", "/v1/device-types/1", world.alice, 403, {"name": "x"})
        == "Missing permission: ManageDeviceType"
    )
    assert (
        await _error(world, "DELETE", "/v1/device-types/1", world.alice, 403)
        == "Missing permission: ManageDeviceType"
    )
    no_types = await mint(world.client, world.alice, actions=["GetDevice"])
    assert (
        await _error(world, "GET", "/v1/device-types", no_types, 403)
        == "Missing permission: GetDeviceType"
    )
    assert (
        await _error(world, "GET", "/v1/device-types/1", no_types, 403)
        == "Missing permission: GetDeviceType"
    )


async def test_listing_filters_sorts_and_pages(world: World) -> None:
    for name in ("pump", "pressure gauge"):
        await rest(world.client, "POST", "/v1/device-types", world.admin, 201, {"name": name})

    async def names(query: str) -> list[str]:
        body = await rest(world.client, "GET", f"/v1/device-types?{query}", world.admin, 200)
        return [item["name"] for item in body["deviceTypes"]]

    assert await names("sortField=name") == ["pressure gauge", "pump", "relay", "thermometer"]
    assert await names("sortField=name&sortOrder=DESC&take=2") == ["thermometer", "relay"]
    assert await names("sortField=name&skip=3") == ["thermometer"]
    assert await names("namePattern=p%25") == ["pump", "pressure gauge"]
    assert await names("name=PUMP") == ["pump"]
    assert await names("skip=100000") == []


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("take=0", 422, "take: must be at least 1"),
        ("take=1001", 422, "take: must be at most 1000"),
        ("skip=-1", 422, "skip: must be at least 0"),
        ("skip=100001", 422, "skip: must be at most 100000"),
        ("take=99999999999999999999", 422, "take: must be at most 1000"),
        ("sortField=password", 422, "sortField: must be one of id, name"),
        ("sortOrder=sideways", 422, "sortOrder: must be one of ASC, DESC"),
        ("namePattern=" + "x" * 201, 422, "namePattern: must be at most 200 characters"),
        ("name=%00", 422, "name: must not contain NUL characters"),
        ("limit=5", 400, "unknown query parameter: limit"),
    ],
)
async def test_listing_refuses_hostile_parameters(
    world: World, query: str, status: int, message: str
) -> None:
    assert await _error(world, "GET", f"/v1/device-types?{query}", world.admin, status) == message


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("GET", "/v1/device-types/0", None, 422, "id: must be at least 1"),
        ("GET", "/v1/device-types/x", None, 422, "id: must be an integer"),
        ("GET", "/v1/device-types/99999999999999999999", None, 422, "id: must be a 64-bit integer"),
        ("POST", "/v1/device-types", {"name": ""}, 422, "name: must not be empty"),
        (
            "POST",
            "/v1/device-types",
            {"name": "x" * 201},
            422,
            "name: must be at most 200 characters",
        ),
        ("POST", "/v1/device-types", {"name": 5}, 422, "name: must be a string"),
        (
            "POST",
            "/v1/device-types",
            {"name": "a\u0000"},
            422,
            "name: must not contain NUL characters",
        ),
        ("POST", "/v1/device-types", {"name": "a", "id": 9}, 422, "body: unknown field: id"),
        ("POST", "/v1/device-types", [], 422, "body: must be a JSON object"),
        (
            "PATCH",
            "/v1/device-types/1",
            {"description": ["x"]},
            422,
            "description: must be a string",
        ),
    ],
)
async def test_device_type_requests_refuse_hostile_input(
    world: World, method: str, path: str, body: Any, status: int, message: str
) -> None:
    assert await _error(world, method, path, world.admin, status, body) == message


async def test_device_types_are_in_the_openapi_document(world: World) -> None:
    document = await rest(world.client, "GET", "/v1/openapi.json", world.admin, 200)
    assert set(document["paths"]["/v1/device-types"]) == {"get", "post"}
    assert set(document["paths"]["/v1/device-types/{id}"]) == {"get", "patch", "delete"}
    listing = document["paths"]["/v1/device-types"]["get"]
    assert [p["name"] for p in listing["parameters"]] == [
        "name",
        "namePattern",
        "sortField",
        "sortOrder",
        "take",
        "skip",
    ]
