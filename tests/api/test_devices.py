"""REST networks, memberships and devices, with the same scope rules as the WebSocket."""

from __future__ import annotations

from typing import Any

from tests.realtime.helpers import World, put_device, rest


async def _error(
    world: World, method: str, path: str, token: str, status: int, body: Any = None
) -> str:
    """The message of an error response (its request_id is random)."""
    error = await rest(world.client, method, path, token, status, body)
    assert set(error) == {"message", "request_id"}
    message: str = error["message"]
    return message


async def test_networks_crud(world: World) -> None:
    created = await rest(
        world.client, "POST", "/v1/networks", world.admin, 201, {"name": "east", "description": "E"}
    )
    assert created == {"id": created["id"], "name": "east", "description": "E"}
    assert created["id"] not in (world.n1, world.n2)
    assert await rest(world.client, "GET", "/v1/networks", world.admin, 200) == {
        "networks": [
            {"id": world.n1, "name": "north", "description": None},
            {"id": world.n2, "name": "south", "description": None},
            created,
        ]
    }
    assert await rest(world.client, "GET", f"/v1/networks/{created['id']}", world.admin, 200) == (
        created
    )
    renamed = await rest(
        world.client, "PATCH", f"/v1/networks/{created['id']}", world.admin, 200, {"name": "west"}
    )
    assert renamed == {**created, "name": "west"}
    assert (
        await _error(world, "POST", "/v1/networks", world.admin, 409, {"name": "North"})
        == "a network named 'North' already exists"
    )
    assert (
        await _error(world, "POST", "/v1/networks", world.admin, 422, {"description": "x"})
        == "body: missing field: name"
    )
    await rest(world.client, "DELETE", f"/v1/networks/{created['id']}", world.admin, 204)
    assert (
        await _error(world, "GET", f"/v1/networks/{created['id']}", world.admin, 404)
        == "Network not found"
    )
    assert (
        await _error(world, "DELETE", f"/v1/networks/{created['id']}", world.admin, 404)
        == "Network not found"
    )


async def test_network_scope_for_clients(world: World) -> None:
    assert await rest(world.client, "GET", "/v1/networks", world.alice, 200) == {
        "networks": [{"id": world.n1, "name": "north", "description": None}]
    }
    assert (await rest(world.client, "GET", f"/v1/networks/{world.n1}", world.alice, 200))[
        "id"
    ] == world.n1
    assert (
        await _error(world, "GET", f"/v1/networks/{world.n2}", world.alice, 403)
        == f"Network {world.n2} is outside the token's scope"
    )
    assert (
        await _error(world, "POST", "/v1/networks", world.alice, 403, {"name": "mine"})
        == "Missing permission: ManageNetwork"
    )
    assert (
        await _error(world, "DELETE", f"/v1/networks/{world.n1}", world.alice, 403)
        == "Missing permission: ManageNetwork"
    )


async def test_deleting_a_network_deletes_its_devices(world: World) -> None:
    await rest(world.client, "DELETE", f"/v1/networks/{world.n1}", world.admin, 204)
    assert await _error(world, "GET", "/v1/devices/d1", world.admin, 404) == "Device d1 not found"
    assert [
        d["id"]
        for d in (await rest(world.client, "GET", "/v1/devices", world.admin, 200))["devices"]
    ] == ["d2"]


async def test_memberships(world: World) -> None:
    path = f"/v1/users/{world.alice_id}/networks/{world.n2}"
    await rest(world.client, "PUT", path, world.admin, 204)
    await rest(world.client, "PUT", path, world.admin, 204)  # idempotent
    user = await rest(world.client, "GET", f"/v1/users/{world.alice_id}", world.admin, 200)
    assert user["networkIds"] == [world.n1, world.n2]
    assert [
        d["id"]
        for d in (await rest(world.client, "GET", "/v1/devices", world.alice, 200))["devices"]
    ] == ["d1", "d2", "d3"]
    await rest(world.client, "DELETE", path, world.admin, 204)
    assert (
        await _error(world, "DELETE", path, world.admin, 404)
        == "The user is not a member of that network"
    )
    assert (
        await _error(world, "PUT", f"/v1/users/999999/networks/{world.n1}", world.admin, 404)
        == "User not found"
    )
    assert (
        await _error(world, "PUT", f"/v1/users/{world.alice_id}/networks/999999", world.admin, 404)
        == "Network not found"
    )
    assert await _error(world, "PUT", path, world.alice, 403) == "Missing permission: ManageUser"


async def test_devices_crud(world: World) -> None:
    created = await put_device(
        world.client, world.admin, "pump-7", world.n2, 2, data={"model": "P7"}
    )
    assert created == {
        "id": "pump-7",
        "name": "pump-7",
        "data": {"model": "P7"},
        "networkId": world.n2,
        "deviceTypeId": 2,
        "isBlocked": False,
    }
    updated = await rest(
        world.client,
        "PUT",
        "/v1/devices/pump-7",
        world.admin,
        200,
        {"name": "Pump seven", "isBlocked": True},
    )
    assert updated == {**created, "name": "Pump seven", "isBlocked": True}
    assert await rest(world.client, "GET", "/v1/devices/pump-7", world.admin, 200) == updated
    listed = await rest(world.client, "GET", "/v1/devices", world.admin, 200)
    assert [d["id"] for d in listed["devices"]] == ["d1", "d2", "d3", "pump-7"]
    assert listed["devices"][3] == updated
    page = await rest(world.client, "GET", "/v1/devices?limit=2", world.admin, 200)
    assert [d["id"] for d in page["devices"]] == ["d1", "d2"]
    page = await rest(world.client, "GET", "/v1/devices?limit=2&cursor=d2", world.admin, 200)
    assert [d["id"] for d in page["devices"]] == ["d3", "pump-7"]
    await rest(world.client, "DELETE", "/v1/devices/pump-7", world.admin, 204)
    assert (
        await _error(world, "GET", "/v1/devices/pump-7", world.admin, 404)
        == "Device pump-7 not found"
    )
    assert (
        await _error(world, "DELETE", "/v1/devices/pump-7", world.admin, 404)
        == "Device pump-7 not found"
    )


async def test_device_scope_for_clients(world: World) -> None:
    listed = await rest(world.client, "GET", "/v1/devices", world.alice, 200)
    assert [d["id"] for d in listed["devices"]] == ["d1", "d3"]
    assert (await rest(world.client, "GET", "/v1/devices/d1", world.alice, 200))["id"] == "d1"
    outside = "Device d2 is outside the token's scope"
    assert await _error(world, "GET", "/v1/devices/d2", world.alice, 403) == outside
    assert await _error(world, "DELETE", "/v1/devices/d2", world.alice, 403) == outside
    assert (
        await _error(world, "PUT", "/v1/devices/d2", world.alice, 403, {"name": "mine"}) == outside
    )
    assert (
        await _error(world, "PUT", "/v1/devices/new-1", world.alice, 403, {"networkId": world.n2})
        == f"Network {world.n2} is outside the token's scope"
    )
    # Moving a device of one's own network into another network is just as outside.
    assert (
        await _error(world, "PUT", "/v1/devices/d1", world.alice, 403, {"networkId": world.n2})
        == f"Network {world.n2} is outside the token's scope"
    )
    # A client of exactly one network may leave networkId out.
    created = await rest(world.client, "PUT", "/v1/devices/new-1", world.alice, 201, {})
    assert created == {
        "id": "new-1",
        "name": "new-1",
        "data": None,
        "networkId": world.n1,
        "deviceTypeId": None,
        "isBlocked": False,
    }
    await rest(world.client, "DELETE", "/v1/devices/new-1", world.alice, 204)
    # bob sees only n2's device.
    listed = await rest(world.client, "GET", "/v1/devices", world.bob, 200)
    assert [d["id"] for d in listed["devices"]] == ["d2"]


async def test_device_validation(world: World) -> None:
    assert (
        await _error(world, "PUT", "/v1/devices/bad.id", world.admin, 422, {"networkId": world.n1})
        == "id: must match [A-Za-z0-9_-]{1,64}"
    )
    assert (
        await _error(world, "GET", "/v1/devices/bad.id", world.admin, 422)
        == "id: must match [A-Za-z0-9_-]{1,64}"
    )
    long_id = "x" * 65
    assert (
        await _error(world, "PUT", f"/v1/devices/{long_id}", world.admin, 422, {"networkId": 1})
        == "id: must be at most 64 characters"
    )
    assert (await put_device(world.client, world.admin, "x" * 64, world.n1))["id"] == "x" * 64
    assert (
        await _error(world, "PUT", "/v1/devices/ok-1", world.admin, 422, {"networkId": 999999})
        == "networkId: no such network: 999999"
    )
    assert (
        await _error(world, "PUT", "/v1/devices/ok-1", world.admin, 422, {"name": "no network"})
        == "device.networkId: missing field"
    )
    assert (
        await _error(world, "PUT", "/v1/devices/ok-1", world.admin, 422, {"colour": "red"})
        == "body: unknown field: colour"
    )
    assert (
        await _error(world, "GET", "/v1/devices?page=2", world.admin, 400)
        == "unknown query parameter: page"
    )
