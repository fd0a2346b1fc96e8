"""REST: networks, memberships and devices."""

from __future__ import annotations

from aiohttp import web

from gateway.api.routing import ROUTES, Call
from gateway.http import json_response
from gateway.schema import DESCRIPTION, DEVICE_ID, AnyJson, Array, Bool, Int, Obj, Str
from gateway.types import Action

NETWORK = Obj(
    {"id": Int(), "name": Str(max_length=200), "description": DESCRIPTION},
    required=["id", "name", "description"],
)
NEW_NETWORK = Obj(
    {"name": Str(min_length=1, max_length=200), "description": DESCRIPTION},
    required=["name"],
)
NETWORK_CHANGES = Obj({"name": Str(min_length=1, max_length=200), "description": DESCRIPTION})
DEVICE = Obj(
    {
        "id": DEVICE_ID,
        "name": Str(),
        "data": AnyJson(),
        "networkId": Int(),
        "deviceTypeId": Int(nullable=True),
        "isBlocked": Bool(),
    },
    required=["id", "name", "data", "networkId", "deviceTypeId", "isBlocked"],
)
DEVICE_FIELDS = Obj(
    {
        "name": Str(min_length=1, max_length=200),
        "data": AnyJson(),
        "networkId": Int(minimum=1),
        "deviceTypeId": Int(minimum=1, nullable=True),
        "isBlocked": Bool(),
    },
    description="networkId may be left out by a client who belongs to exactly one network.",
)
NETWORK_ID = {"id": Int(minimum=1)}


@ROUTES.route(
    "POST",
    "/v1/networks",
    summary="Create a network",
    tag="networks",
    body=NEW_NETWORK,
    permission=Action.ManageNetwork,
    responses={201: NETWORK, 409: None},
)
async def create_network(call: Call) -> web.Response:
    network = await call.ctx.networks.create_network(
        call.body["name"], call.body.get("description")
    )
    return json_response(network.to_json(), status=201)


@ROUTES.route(
    "GET",
    "/v1/networks",
    summary="The networks the caller may see (a client: those they belong to)",
    tag="networks",
    permission=Action.GetNetwork,
    responses={200: Obj({"networks": Array(NETWORK)}, required=["networks"])},
)
async def list_networks(call: Call) -> web.Response:
    networks = await call.ctx.networks.networks(call.principal)
    return json_response({"networks": [network.to_json() for network in networks]})


@ROUTES.route(
    "GET",
    "/v1/networks/{id}",
    summary="One network",
    tag="networks",
    params=NETWORK_ID,
    permission=Action.GetNetwork,
    responses={200: NETWORK, 404: None},
)
async def get_network(call: Call) -> web.Response:
    network = await call.ctx.networks.network(call.principal, call.params["id"])
    return json_response(network.to_json())


@ROUTES.route(
    "PATCH",
    "/v1/networks/{id}",
    summary="Rename a network or change its description",
    tag="networks",
    params=NETWORK_ID,
    body=NETWORK_CHANGES,
    permission=Action.ManageNetwork,
    responses={200: NETWORK, 404: None, 409: None},
)
async def update_network(call: Call) -> web.Response:
    network = await call.ctx.networks.update_network(call.params["id"], call.body)
    return json_response(network.to_json())


@ROUTES.route(
    "DELETE",
    "/v1/networks/{id}",
    summary="Delete a network with its devices",
    tag="networks",
    params=NETWORK_ID,
    permission=Action.ManageNetwork,
    responses={204: None, 404: None},
)
async def delete_network(call: Call) -> web.Response:
    await call.ctx.networks.delete_network(call.params["id"])
    return web.Response(status=204)


MEMBERSHIP = {"id": Int(minimum=1), "network_id": Int(minimum=1)}


@ROUTES.route(
    "PUT",
    "/v1/users/{id}/networks/{network_id}",
    summary="Make the user a member of the network (applies to live sessions at once)",
    tag="networks",
    params=MEMBERSHIP,
    permission=Action.ManageUser,
    responses={204: None, 404: None},
)
async def add_membership(call: Call) -> web.Response:
    await call.ctx.networks.set_membership(call.params["id"], call.params["network_id"], True)
    return web.Response(status=204)


@ROUTES.route(
    "DELETE",
    "/v1/users/{id}/networks/{network_id}",
    summary="End the user's membership of the network (applies to live sessions at once)",
    tag="networks",
    params=MEMBERSHIP,
    permission=Action.ManageUser,
    responses={204: None, 404: None},
)
async def remove_membership(call: Call) -> web.Response:
    await call.ctx.networks.set_membership(call.params["id"], call.params["network_id"], False)
    return web.Response(status=204)


DEVICE_PATH = {"id": DEVICE_ID}


@ROUTES.route(
    "GET",
    "/v1/devices",
    summary="The devices the caller may see, by id; pass the last id as cursor for more",
    tag="devices",
    query={"limit": Int(minimum=1, maximum=1000), "cursor": DEVICE_ID},
    permission=Action.GetDevice,
    responses={200: Obj({"devices": Array(DEVICE)}, required=["devices"])},
)
async def list_devices(call: Call) -> web.Response:
    devices = await call.ctx.devices.list_devices(
        call.principal, call.query.get("limit", 1000), call.query.get("cursor", "")
    )
    return json_response({"devices": [device.to_json() for device in devices]})


@ROUTES.route(
    "GET",
    "/v1/devices/{id}",
    summary="One device",
    tag="devices",
    params=DEVICE_PATH,
    permission=Action.GetDevice,
    responses={200: DEVICE, 404: None},
)
async def get_device(call: Call) -> web.Response:
    device = await call.ctx.devices.device_for(call.principal, call.params["id"], Action.GetDevice)
    return json_response(device.to_json())


@ROUTES.route(
    "PUT",
    "/v1/devices/{id}",
    summary="Register or update a device (201 when created)",
    tag="devices",
    params=DEVICE_PATH,
    body=DEVICE_FIELDS,
    permission=Action.RegisterDevice,
    responses={200: DEVICE, 201: DEVICE, 422: None},
)
async def save_device(call: Call) -> web.Response:
    device, created = await call.ctx.devices.save_device(
        call.principal, call.params["id"], call.body
    )
    return json_response(device.to_json(), status=201 if created else 200)


@ROUTES.route(
    "DELETE",
    "/v1/devices/{id}",
    summary="Delete a device",
    tag="devices",
    params=DEVICE_PATH,
    permission=Action.RegisterDevice,
    responses={204: None, 404: None},
)
async def delete_device(call: Call) -> web.Response:
    await call.ctx.devices.delete_device(call.principal, call.params["id"])
    return web.Response(status=204)
