"""DeviceHive dialect: users, networks, device types and configuration properties."""

from __future__ import annotations

from aiohttp import web

from gateway.api.devicehive.routing import no_content, route
from gateway.api.routing import Call
from gateway.devices.catalog import require
from gateway.devices.devicehive import network_json, user_filters, user_json
from gateway.http import json_response
from gateway.listing import by_name, filters, like_pattern, paging
from gateway.schema import DESCRIPTION, Int, Obj, Str
from gateway.types import Action

ID = {"id": Int(minimum=1)}
USER_LISTING = {
    "login": Str(min_length=1, max_length=320),
    "loginPattern": like_pattern(320),
    "role": Int(minimum=0, maximum=1),
    "status": Int(minimum=0, maximum=2),
    **paging(["id", "login"]),
}
NAMED = Obj(
    {"name": Str(min_length=1, max_length=200), "description": DESCRIPTION},
    required=["name"],
    additional=True,
)


@route("GET", "/user/current")
async def dialect_user_current(call: Call) -> web.Response:
    user, access = await call.ctx.dh.catalog.current_user(call.principal)
    return json_response(user_json(user, access))


@route("GET", "/user/{id}", params=ID)
async def dialect_user_get(call: Call) -> web.Response:
    user, access = await call.ctx.dh.catalog.user(call.principal, call.params["id"])
    return json_response(user_json(user, access))


@route("GET", "/user", query=USER_LISTING)
async def dialect_user_list(call: Call) -> web.Response:
    found = await call.ctx.dh.catalog.user_list(
        call.principal, **{**filters(call.query), **user_filters(call.query)}
    )
    return json_response([user_json(user, access) for user, access in found])


@route("GET", "/network", query=by_name(["id", "name"]))
async def dialect_network_list(call: Call) -> web.Response:
    found = await call.ctx.dh.catalog.network_list(call.principal, **filters(call.query))
    return json_response([network.to_json() for network in found])


@route("GET", "/network/{id}", params=ID)
async def dialect_network_get(call: Call) -> web.Response:
    network, devices = await call.ctx.dh.catalog.network(call.principal, call.params["id"])
    return json_response(network_json(network, devices))


@route("POST", "/network", body=NAMED)
async def dialect_network_create(call: Call) -> web.Response:
    require(call.principal, Action.ManageNetwork)
    network = await call.ctx.networks.create_network(
        call.body["name"], call.body.get("description")
    )
    return json_response({"id": network.id}, 201)


@route("GET", "/devicetype", query=by_name(["id", "name"]))
async def dialect_device_type_list(call: Call) -> web.Response:
    found = await call.ctx.dh.device_types.find(call.principal, **filters(call.query))
    return json_response([device_type.to_json() for device_type in found])


@route("GET", "/devicetype/{id}", params=ID)
async def dialect_device_type_get(call: Call) -> web.Response:
    found = await call.ctx.dh.device_types.get(call.principal, call.params["id"])
    return json_response(found.to_json())


@route("POST", "/devicetype", body=NAMED)
async def dialect_device_type_create(call: Call) -> web.Response:
    created = await call.ctx.dh.device_types.create(
        call.principal, call.body["name"], call.body.get("description")
    )
    return json_response({"id": created.id}, 201)


PROPERTY = {"name": Str(min_length=1, max_length=128)}
VALUE = Obj({"value": Str(max_length=4096)}, required=["value"], additional=True)


@route("GET", "/configuration/{name}", params=PROPERTY)
async def dialect_configuration_get(call: Call) -> web.Response:
    found = await call.ctx.dh.catalog.get_property(call.principal, call.params["name"])
    return json_response(found.to_json())


@route("PUT", "/configuration/{name}", params=PROPERTY, body=VALUE)
async def dialect_configuration_put(call: Call) -> web.Response:
    saved = await call.ctx.dh.catalog.put_property(
        call.principal, call.params["name"], call.body["value"]
    )
    return json_response(saved.to_json())


@route("DELETE", "/configuration/{name}", params=PROPERTY)
async def dialect_configuration_delete(call: Call) -> web.Response:
    await call.ctx.dh.catalog.delete_property(call.principal, call.params["name"])
    return no_content()
