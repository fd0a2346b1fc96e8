"""REST: device types (GetDeviceType to read, ManageDeviceType to change)."""

from __future__ import annotations

from aiohttp import web

from gateway.api.routing import ROUTES, Call
from gateway.http import json_response
from gateway.listing import by_name, filters
from gateway.schema import DESCRIPTION, Array, Bool, Int, Obj, Str
from gateway.store.devicetypes import TypeAccess
from gateway.types import Action

DEVICE_TYPE = Obj(
    {"id": Int(), "name": Str(), "description": DESCRIPTION},
    required=["id", "name", "description"],
)
NEW_DEVICE_TYPE = Obj(
    {"name": Str(min_length=1, max_length=200), "description": DESCRIPTION},
    required=["name"],
)
DEVICE_TYPE_CHANGES = Obj({"name": Str(min_length=1, max_length=200), "description": DESCRIPTION})
DEVICE_TYPE_ID = {"id": Int(minimum=1)}
LISTING = by_name(["id", "name"])


@ROUTES.route(
    "POST",
    "/v1/device-types",
    summary="Create a device type",
    tag="device types",
    body=NEW_DEVICE_TYPE,
    permission=Action.ManageDeviceType,
    responses={201: DEVICE_TYPE, 409: None},
)
async def create_device_type(call: Call) -> web.Response:
    created = await call.ctx.dh.device_types.create(
        call.principal, call.body["name"], call.body.get("description")
    )
    return json_response(created.to_json(), status=201)


@ROUTES.route(
    "GET",
    "/v1/device-types",
    summary="Device types, filtered and sorted as DeviceHive's devicetype/list",
    tag="device types",
    query=LISTING,
    permission=Action.GetDeviceType,
    responses={200: Obj({"deviceTypes": Array(DEVICE_TYPE)}, required=["deviceTypes"])},
)
async def list_device_types(call: Call) -> web.Response:
    found = await call.ctx.dh.device_types.find(call.principal, **filters(call.query))
    return json_response({"deviceTypes": [device_type.to_json() for device_type in found]})


@ROUTES.route(
    "GET",
    "/v1/device-types/{id}",
    summary="One device type",
    tag="device types",
    params=DEVICE_TYPE_ID,
    permission=Action.GetDeviceType,
    responses={200: DEVICE_TYPE, 404: None},
)
async def get_device_type(call: Call) -> web.Response:
    found = await call.ctx.dh.device_types.get(call.principal, call.params["id"])
    return json_response(found.to_json())


@ROUTES.route(
    "PATCH",
    "/v1/device-types/{id}",
    summary="Rename a device type or change its description",
    tag="device types",
    params=DEVICE_TYPE_ID,
    body=DEVICE_TYPE_CHANGES,
    permission=Action.ManageDeviceType,
    responses={200: DEVICE_TYPE, 404: None, 409: None},
)
async def update_device_type(call: Call) -> web.Response:
    updated = await call.ctx.dh.device_types.update(call.principal, call.params["id"], call.body)
    return json_response(updated.to_json())


@ROUTES.route(
    "DELETE",
    "/v1/device-types/{id}",
    summary="Delete a device type no device uses (409 while one does)",
    tag="device types",
    params=DEVICE_TYPE_ID,
    permission=Action.ManageDeviceType,
    responses={204: None, 404: None, 409: None},
)
async def delete_device_type(call: Call) -> web.Response:
    await call.ctx.dh.device_types.delete(call.principal, call.params["id"])
    return web.Response(status=204)


TYPE_ACCESS = Obj(
    {"allDeviceTypesAvailable": Bool(), "deviceTypeIds": Array(Int(), max_items=1000)},
    required=["allDeviceTypesAvailable", "deviceTypeIds"],
)
NEW_TYPE_ACCESS = Obj(
    {
        "allDeviceTypesAvailable": Bool(),
        "deviceTypeIds": Array(Int(minimum=1), max_items=1000),
    },
    required=["allDeviceTypesAvailable"],
    description="deviceTypeIds: the device types reachable when not all are (kept either way)",
)
USER_ID = {"id": Int(minimum=1)}


def _access_json(access: TypeAccess) -> dict[str, object]:
    return {"allDeviceTypesAvailable": access.all, "deviceTypeIds": sorted(access.ids)}


@ROUTES.route(
    "GET",
    "/v1/users/{id}/device-types",
    summary="The user's device type access (ManageUser, or one's own)",
    tag="device types",
    params=USER_ID,
    responses={200: TYPE_ACCESS, 403: None, 404: None},
)
async def get_device_type_access(call: Call) -> web.Response:
    access = await call.ctx.dh.device_types.access_of(call.principal, call.params["id"])
    return json_response(_access_json(access))


@ROUTES.route(
    "PUT",
    "/v1/users/{id}/device-types",
    summary="Set which device types a client user reaches (applies to live sessions at once)",
    tag="device types",
    params=USER_ID,
    body=NEW_TYPE_ACCESS,
    permission=Action.ManageUser,
    responses={200: TYPE_ACCESS, 404: None, 422: None},
)
async def set_device_type_access(call: Call) -> web.Response:
    access = await call.ctx.dh.device_types.set_access(
        call.principal,
        call.params["id"],
        call.body["allDeviceTypesAvailable"],
        call.body.get("deviceTypeIds", []),
    )
    return json_response(_access_json(access))
