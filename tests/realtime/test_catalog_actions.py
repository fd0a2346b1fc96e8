"""WebSocket actions over users, networks, device types, tokens, configuration and the cluster,
in DeviceHive's shapes: each succeeds with its permission and is refused without it or outside
its scope."""

from __future__ import annotations

import time
from typing import Any

import pytest

from gateway.clock import iso
from tests.conftest import ADMIN_EMAIL
from tests.realtime.helpers import ALICE_EMAIL, BOB_EMAIL, World, connect, mint

LIKE_ERROR = "{}: a LIKE pattern must not end with a lone backslash (write \\\\ for one)"


def _user(user_id: int, email: str, role: int, network_ids: list[int]) -> dict[str, Any]:
    return {
        "id": user_id,
        "login": email,
        "name": email.split("@")[0],
        "role": role,
        "status": 0,
        "lastLogin": None,
        "data": None,
        "introReviewed": True,
        "allDeviceTypesAvailable": True,
        "networkIds": network_ids,
    }


def _alice(world: World) -> dict[str, Any]:
    return _user(world.alice_id, ALICE_EMAIL, 1, [world.n1])


def _bob(world: World) -> dict[str, Any]:
    return _user(world.bob_id, BOB_EMAIL, 1, [world.n2])


async def test_user_get_current(world: World) -> None:
    alice = await connect(world.client, world.alice)
    assert await alice.ok("user/getCurrent") == {"current": _alice(world)}
    no_user = await connect(
        world.client, await mint(world.client, world.alice, actions=["GetDevice"])
    )
    await no_user.fails("user/getCurrent", 403, "Missing permission: GetCurrentUser")


async def test_user_get(world: World) -> None:
    admin = await connect(world.client, world.admin)
    assert await admin.ok("user/get", userId=world.alice_id) == {"user": _alice(world)}
    await admin.fails("user/get", 404, "User not found", userId=999)
    alice = await connect(world.client, world.alice)
    assert await alice.ok("user/get", userId=world.alice_id) == {"user": _alice(world)}
    await alice.fails("user/get", 403, "Missing permission: ManageUser", userId=world.bob_id)
    no_user = await connect(
        world.client, await mint(world.client, world.alice, actions=["GetDevice"])
    )
    await no_user.fails(
        "user/get", 403, "Missing permission: GetCurrentUser", userId=world.alice_id
    )


async def test_user_list(world: World) -> None:
    admin = await connect(world.client, world.admin)
    listed = await admin.ok("user/list")
    assert [u["login"] for u in listed["users"]] == [ADMIN_EMAIL, ALICE_EMAIL, BOB_EMAIL]
    assert listed["users"][1:] == [_alice(world), _bob(world)]
    assert (await admin.ok("user/list", role=1, sortField="login", sortOrder="DESC"))["users"] == [
        _bob(world),
        _alice(world),
    ]
    assert (await admin.ok("user/list", loginPattern="%@example.com", take=1, skip=1))["users"] == [
        _alice(world)
    ]
    assert (await admin.ok("user/list", login="BOB@example.com"))["users"] == [_bob(world)]
    assert await admin.ok("user/list", status=2) == {"users": []}
    alice = await connect(world.client, world.alice)
    await alice.fails("user/list", 403, "Missing permission: ManageUser")


async def test_network_list_and_get(world: World) -> None:
    north = {"id": world.n1, "name": "north", "description": None}
    south = {"id": world.n2, "name": "south", "description": None}
    admin = await connect(world.client, world.admin)
    assert await admin.ok("network/list") == {"networks": [north, south]}
    assert await admin.ok("network/list", sortField="name", sortOrder="DESC", take=1) == {
        "networks": [south]
    }
    assert await admin.ok("network/list", namePattern="n%") == {"networks": [north]}
    alice = await connect(world.client, world.alice)
    assert await alice.ok("network/list") == {"networks": [north]}  # only her own
    got = await alice.ok("network/get", networkId=world.n1)
    assert got["network"] | {"devices": None} == north | {"devices": None}
    assert [d["id"] for d in got["network"]["devices"]] == ["d1", "d3"]
    await alice.fails(
        "network/get", 403, f"Network {world.n2} is outside the token's scope", networkId=world.n2
    )
    await admin.fails("network/get", 404, "Network not found", networkId=999)
    only_d1 = await connect(
        world.client,
        await mint(
            world.client, world.alice, actions=["GetNetwork", "GetDevice"], deviceIds=["d1"]
        ),
    )
    assert [
        d["id"] for d in (await only_d1.ok("network/get", networkId=world.n1))["network"]["devices"]
    ] == ["d1"]
    no_network = await connect(
        world.client, await mint(world.client, world.alice, actions=["GetDevice"])
    )
    await no_network.fails("network/list", 403, "Missing permission: GetNetwork")
    await no_network.fails("network/get", 403, "Missing permission: GetNetwork", networkId=world.n1)


async def test_devicetype_list_and_get(world: World) -> None:
    thermometer = {"id": 1, "name": "thermometer", "description": None}
    relay = {"id": 2, "name": "relay", "description": None}
    alice = await connect(world.client, world.alice)
    assert await alice.ok("devicetype/list") == {"deviceTypes": [thermometer, relay]}
    assert await alice.ok("devicetype/list", sortField="name", take=1) == {"deviceTypes": [relay]}
    assert await alice.ok("devicetype/list", name="RELAY") == {"deviceTypes": [relay]}
    assert await alice.ok("devicetype/get", deviceTypeId=1) == {"deviceType": thermometer}
    await alice.fails("devicetype/get", 404, "Device type not found", deviceTypeId=3)
    no_types = await connect(
        world.client, await mint(world.client, world.alice, actions=["GetDevice"])
    )
    await no_types.fails("devicetype/list", 403, "Missing permission: GetDeviceType")
    await no_types.fails("devicetype/get", 403, "Missing permission: GetDeviceType", deviceTypeId=1)


async def test_token_create(world: World) -> None:
    alice = await connect(world.client, world.alice)
    body = await alice.ok(
        "token/create",
        payload={"userId": world.alice_id, "actions": ["GetDevice"], "deviceIds": ["d1"]},
    )
    assert set(body) == {"accessToken", "refreshToken"}
    minted = await connect(world.client, body["accessToken"])
    assert (await minted.ok("device/get", deviceId="d1"))["device"]["id"] == "d1"
    await minted.fails("device/get", 403, "Device d3 is outside the token's scope", deviceId="d3")
    await alice.fails(
        "token/create",
        403,
        "Minting a token for another user needs ManageUser",
        payload={"userId": world.bob_id},
    )
    await alice.fails(
        "token/create",
        403,
        f"Requested networkIds exceed what the caller and the user may reach: {world.n2}",
        payload={"networkIds": [world.n2]},
    )
    await alice.fails(
        "token/create",
        403,
        "Requested actions exceed your own rights: ManageUser",
        payload={"actions": ["ManageUser"]},
    )
    await minted.fails("token/create", 403, "Missing permission: ManageToken", payload={})
    admin = await connect(world.client, world.admin)
    for_bob = await admin.ok(
        "token/create",
        payload={
            "userId": world.bob_id,
            "networkIds": ["*"],
            "expiration": iso(time.time() + 3600),
        },
    )
    assert set(for_bob) == {"accessToken", "refreshToken"}
    await admin.fails(
        "token/create",
        422,
        "expires_in must be at most 31536000 seconds",
        payload={"expiration": "2099-01-01T00:00:00Z"},
    )


async def test_configuration(world: World) -> None:
    admin = await connect(world.client, world.admin)
    await admin.fails(
        "configuration/get", 404, "Configuration property site.name not found", name="site.name"
    )
    assert await admin.ok("configuration/put", name="site.name", value="greenhouse") == {
        "configuration": {"name": "site.name", "value": "greenhouse", "entityVersion": 0}
    }
    await admin.ok("configuration/put", name="site.name", value="orchard")
    assert await admin.ok("configuration/get", name="site.name") == {
        "configuration": {"name": "site.name", "value": "orchard", "entityVersion": 1}
    }
    alice = await connect(world.client, world.alice)
    await alice.fails(
        "configuration/get", 403, "Missing permission: ManageConfiguration", name="site.name"
    )
    await alice.fails(
        "configuration/put", 403, "Missing permission: ManageConfiguration", name="x", value="y"
    )
    await alice.fails(
        "configuration/delete", 403, "Missing permission: ManageConfiguration", name="site.name"
    )
    assert await admin.ok("configuration/delete", name="site.name") == {}
    await admin.fails(
        "configuration/delete", 404, "Configuration property site.name not found", name="site.name"
    )
    await admin.fails(
        "configuration/get", 422, "name: must match [A-Za-z0-9._-]{1,128}", name="a b"
    )


async def test_cluster_info(world: World) -> None:
    alice = await connect(world.client, world.alice)
    info = await alice.ok("cluster/info")
    assert info == {
        "clusterInfo": {"instanceId": info["clusterInfo"]["instanceId"], "bus": "in-process"}
    }
    anonymous = await connect(world.client)
    await anonymous.fails(
        "cluster/info", 401, "Not authenticated: send authenticate with an access token"
    )


@pytest.mark.parametrize(
    ("action", "fields", "error"),
    [
        ("user/list", {"take": 0}, "take: must be at least 1"),
        ("user/list", {"take": 1001}, "take: must be at most 1000"),
        ("user/list", {"skip": -1}, "skip: must be at least 0"),
        ("user/list", {"skip": 100_001}, "skip: must be at most 100000"),
        ("user/list", {"sortField": "password_hash"}, "sortField: must be one of id, login"),
        ("user/list", {"sortOrder": "up"}, "sortOrder: must be one of ASC, DESC"),
        ("user/list", {"role": 7}, "role: must be at most 1"),
        ("user/list", {"login": "x" * 321}, "login: must be at most 320 characters"),
        ("user/list", {"take": 2**63}, "take: must be at most 1000"),
        ("user/get", {"userId": "1"}, "userId: must be an integer"),
        ("user/get", {}, "body: missing field: userId"),
        ("network/list", {"namePattern": "x" * 201}, "namePattern: must be at most 200 characters"),
        ("network/list", {"sortField": "description"}, "sortField: must be one of id, name"),
        ("network/list", {"namePattern": "%\\"}, LIKE_ERROR.format("namePattern")),
        ("devicetype/list", {"namePattern": "\\"}, LIKE_ERROR.format("namePattern")),
        ("user/list", {"loginPattern": "%\\"}, LIKE_ERROR.format("loginPattern")),
        ("network/get", {"networkId": 0}, "networkId: must be at least 1"),
        ("devicetype/list", {"take": True}, "take: must be an integer"),
        ("devicetype/get", {"deviceTypeId": 2**64 - 1}, "deviceTypeId: must be a 64-bit integer"),
        ("token/create", {"payload": []}, "payload: must be a JSON object"),
        ("token/create", {"payload": {"actions": ["Fly"]}}, "unknown action: 'Fly'"),
        (
            "token/create",
            {"payload": {"expiration": "soon"}},
            "payload.expiration: not an ISO-8601 timestamp: 'soon'",
        ),
        (
            "token/create",
            {"payload": {"expiration": "2001-01-01T00:00:00Z"}},
            "payload.expiration: must be in the future",
        ),
        (
            "configuration/put",
            {"name": "a", "value": "x" * 4097},
            "value: must be at most 4096 characters",
        ),
        ("configuration/get", {"name": "x" * 129}, "name: must be at most 128 characters"),
    ],
)
async def test_hostile_requests_get_precise_errors(
    world: World, action: str, fields: dict[str, Any], error: str
) -> None:
    admin = await connect(world.client, world.admin)
    request_id = await admin.send(action, **fields)
    reply = await admin.reply(request_id)
    assert reply["status"] == "error" and reply["error"] == error, reply
    assert reply["code"] in (400, 422)
    assert await admin.is_open()
