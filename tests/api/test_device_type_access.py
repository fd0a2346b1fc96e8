"""DeviceHive's user <-> device type access: a client with allDeviceTypesAvailable false reaches
only devices of the listed types (and untyped ones), on every path, live sessions included."""

from __future__ import annotations

from typing import Any

import pytest

from tests.realtime.helpers import World, build_world, connect, insert, rest

RELAY = {"id": 2, "name": "relay", "description": None}


@pytest.fixture
async def world(client: Any) -> World:
    return await build_world(client)


async def _set(world: World, user_id: int, all_types: bool, ids: list[int]) -> Any:
    body = {"allDeviceTypesAvailable": all_types, "deviceTypeIds": ids}
    return await rest(
        world.client, "PUT", f"/v1/users/{user_id}/device-types", world.admin, 200, body
    )


async def _error(
    world: World, method: str, path: str, token: str, status: int, body: Any = None
) -> str:
    error = await rest(world.client, method, path, token, status, body)
    assert set(error) == {"message", "request_id"}
    message: str = error["message"]
    return message


async def test_a_client_limited_to_some_device_types_reaches_only_those(world: World) -> None:
    alice = await connect(world.client, world.alice)
    await alice.subscribe(networkIds=[world.n1])
    assert await _set(world, world.alice_id, False, [2]) == {
        "allDeviceTypesAvailable": False,
        "deviceTypeIds": [2],
    }
    admin = await connect(world.client, world.admin)
    await insert(admin, "d1", "hidden")  # a thermometer: type 1
    untyped = await insert(admin, "d3", "shown")
    assert (await alice.push())["notification"]["id"] == untyped["id"]
    await alice.no_push()
    await alice.fails("device/get", 403, "Device d1 is outside the token's scope", deviceId="d1")
    assert [d["id"] for d in (await alice.ok("device/list"))["devices"]] == ["d3"]
    assert await alice.ok("devicetype/list") == {"deviceTypes": [RELAY]}
    await alice.fails(
        "devicetype/get", 403, "Device type 1 is outside the user's device types", deviceTypeId=1
    )
    await alice.fails(
        "device/save",
        403,
        "Device type 1 is outside the user's device types",
        deviceId="new",
        device={"deviceTypeId": 1},
    )
    assert (await alice.ok("user/getCurrent"))["current"]["allDeviceTypesAvailable"] is False
    assert [
        d["id"] for d in (await alice.ok("network/get", networkId=world.n1))["network"]["devices"]
    ] == ["d3"]
    assert (
        await _error(world, "GET", "/v1/devices/d1/notifications", world.alice, 403)
        == "Device d1 is outside the token's scope"
    )
    polled = await rest(
        world.client,
        "GET",
        "/api/rest/device/notification/poll?timestamp=2000-01-01T00:00:00Z&waitTimeout=0",
        world.alice,
        200,
    )
    assert [n["deviceId"] for n in polled] == ["d3"]

    # Opening every device type again applies to the live socket at once.
    await _set(world, world.alice_id, True, [])
    again = await insert(admin, "d1", "visible")
    assert (await alice.push())["notification"]["id"] == again["id"]
    assert (await alice.ok("device/get", deviceId="d1"))["device"]["id"] == "d1"


async def test_reading_and_setting_the_access(world: World) -> None:
    path = f"/v1/users/{world.alice_id}/device-types"
    assert await rest(world.client, "GET", path, world.alice, 200) == {
        "allDeviceTypesAvailable": True,
        "deviceTypeIds": [],
    }
    await _set(world, world.alice_id, False, [1, 2, 1])
    assert await rest(world.client, "GET", path, world.admin, 200) == {
        "allDeviceTypesAvailable": False,
        "deviceTypeIds": [1, 2],
    }
    assert (
        await _error(world, "GET", f"/v1/users/{world.bob_id}/device-types", world.alice, 403)
        == "Missing permission: ManageUser"
    )
    body = {"allDeviceTypesAvailable": True}
    assert await _error(world, "PUT", path, world.alice, 403, body) == (
        "Missing permission: ManageUser"
    )
    assert await _error(world, "PUT", "/v1/users/999/device-types", world.admin, 404, body) == (
        "User not found"
    )
    assert await _error(world, "GET", "/v1/users/999/device-types", world.admin, 404) == (
        "User not found"
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"allDeviceTypesAvailable": False, "deviceTypeIds": [99]},
            "deviceTypeIds: no such device type: 99",
        ),
        ({"deviceTypeIds": [1]}, "body: missing field: allDeviceTypesAvailable"),
        ({"allDeviceTypesAvailable": "no"}, "allDeviceTypesAvailable: must be true or false"),
        (
            {"allDeviceTypesAvailable": False, "deviceTypeIds": [0]},
            "deviceTypeIds[0]: must be at least 1",
        ),
        (
            {"allDeviceTypesAvailable": False, "deviceTypeIds": list(range(1, 1002))},
            "deviceTypeIds: must have at most 1000 items",
        ),
    ],
)
async def test_setting_refuses_hostile_input(
    world: World, body: dict[str, Any], message: str
) -> None:
    path = f"/v1/users/{world.alice_id}/device-types"
    assert await _error(world, "PUT", path, world.admin, 422, body) == message
