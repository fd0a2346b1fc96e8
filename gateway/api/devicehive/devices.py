"""DeviceHive dialect: devices, their notifications and commands, and the long polls."""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from gateway.api.devicehive.routing import Flag, no_content, route
from gateway.api.routing import Call
from gateway.clock import iso
from gateway.devices.devicehive import (
    NAME,
    TIMESTAMP,
    history_listing,
    history_query,
    timestamp_of,
)
from gateway.devices.history import MAX_WAIT
from gateway.errors import NotFound, Unprocessable
from gateway.http import MAX_QUERY_TEXT, json_response
from gateway.limits import INT32_MAX, item_timestamp
from gateway.listing import MAX_SKIP, MAX_TAKE
from gateway.schema import DEVICE_ID, AnyJson, Bool, Int, Obj, Str
from gateway.store.history import Query
from gateway.types import COMMAND, NOTIFICATION, Action

DEVICE = {"id": DEVICE_ID}
DEVICE_FIELDS = Obj(
    {
        "id": DEVICE_ID,
        "name": NAME,
        "data": AnyJson(),
        "networkId": Int(minimum=1, nullable=True),
        "deviceTypeId": Int(minimum=1, nullable=True),
        "isBlocked": Bool(nullable=True),
    },
    additional=True,
)
DEVICE_LISTING = {
    "name": Str(min_length=1, max_length=256),
    "networkId": Int(minimum=1),
    "sortField": Str(enum=["id", "name"]),
    "sortOrder": Str(enum=["ASC", "DESC"]),
    "take": Int(minimum=1, maximum=MAX_TAKE),
    "skip": Int(minimum=0, maximum=MAX_SKIP),
}


@route("GET", "/device", query=DEVICE_LISTING)
async def dialect_device_list(call: Call) -> web.Response:
    query = call.query
    page = await call.ctx.devices.find_devices(
        call.principal,
        network_id=query.get("networkId"),
        name=query.get("name"),
        by_name=query.get("sortField") == "name",
        descending=query.get("sortOrder") == "DESC",
        limit=query.get("take", 1000),
        offset=query.get("skip", 0),
    )
    return json_response([device.to_json() for device in page])


@route("GET", "/device/{id}", params=DEVICE)
async def dialect_device_get(call: Call) -> web.Response:
    device = await call.ctx.devices.device_for(call.principal, call.params["id"], Action.GetDevice)
    return json_response(device.to_json())


@route("PUT", "/device/{id}", params=DEVICE, body=DEVICE_FIELDS)
async def dialect_device_save(call: Call) -> web.Response:
    fields = {
        key: value
        for key, value in call.body.items()
        if key in DEVICE_FIELDS.properties
        and key != "id"
        # DeviceHive's client sends null for what it leaves alone.
        and (value is not None or key in ("data", "deviceTypeId"))
    }
    await call.ctx.devices.save_device(call.principal, call.params["id"], fields)
    return no_content()


@route("DELETE", "/device/{id}", params=DEVICE)
async def dialect_device_delete(call: Call) -> web.Response:
    await call.ctx.devices.delete_device(call.principal, call.params["id"])
    return no_content()


# -- long polls (declared before /device/{id}/<kind>/{itemId}, which would shadow them) -----

POLL = {
    "timestamp": TIMESTAMP,
    "names": Str(max_length=MAX_QUERY_TEXT),
    "waitTimeout": Int(minimum=0, maximum=int(MAX_WAIT)),
    "limit": Int(minimum=0, maximum=1000),
}
POLL_MANY = {
    **POLL,
    "deviceId": DEVICE_ID,
    "networkIds": Str(max_length=MAX_QUERY_TEXT),
    "deviceTypeIds": Str(max_length=MAX_QUERY_TEXT),
}
DEFAULT_POLL_WAIT = 30
LAST_SECOND = 253_402_300_799.0
"""9999-12-31T23:59:59Z: nothing a row can carry comes after it."""


def _ids(text: str | None, field: str) -> frozenset[int] | None:
    if text is None:
        return None
    parts = [part for part in text.split(",") if part]
    # isascii: str.isdigit() also holds for digits int() refuses, such as "²".
    if len(parts) > 1000 or not all(
        part.isascii() and part.isdigit() and len(part) <= 18 for part in parts
    ):
        raise Unprocessable(f"{field}: must be a comma-separated list of ids (at most 1000)")
    return frozenset(int(part) for part in parts) or None


def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [name for name in text.split(",") if name]
    if len(names) > 256 or any(len(name) > 256 for name in names):
        raise Unprocessable("names: at most 256 names of at most 256 characters")
    return names or None


def _after_millisecond(text: str | None) -> float | None:
    """DeviceHive's poll ``timestamp`` names a millisecond (what items carry): what follows it
    is what is newer than that whole millisecond, or an item would come back on every poll."""
    stamp = timestamp_of(text, "timestamp")
    if stamp is None:
        return None
    return min((math.floor(round(stamp * 1000, 3)) + 1) / 1000 - 1e-6, LAST_SECOND)


async def _poll(call: Call, kind: str, device_id: str | None) -> web.Response:
    query = call.query
    updated = kind == COMMAND and bool(query.get("returnUpdatedCommands"))
    request = Query(
        kind=kind,
        names=_names(query.get("names")),
        since=_after_millisecond(query.get("timestamp")),
        device_type_ids=_ids(query.get("deviceTypeIds"), "deviceTypeIds"),
        updated=updated,
        # DeviceHive's client asks with limit=0 (and waitTimeout=0) on every poll: 0 means
        # the default, as it does for DeviceHive's servers.
        limit=query.get("limit") or 1000,
    )
    items = await call.ctx.dh.history.poll_reach(
        call.principal,
        request,
        query.get("waitTimeout", DEFAULT_POLL_WAIT),
        device_id=device_id or query.get("deviceId"),
        network_ids=_ids(query.get("networkIds"), "networkIds"),
    )
    return json_response([item.to_json() for item in items])


@route("GET", "/device/notification/poll", query=POLL_MANY)
async def dialect_notification_poll_many(call: Call) -> web.Response:
    return await _poll(call, NOTIFICATION, None)


@route("GET", "/device/command/poll", query={**POLL_MANY, "returnUpdatedCommands": Flag()})
async def dialect_command_poll_many(call: Call) -> web.Response:
    return await _poll(call, COMMAND, None)


@route("GET", "/device/{id}/notification/poll", params=DEVICE, query=POLL)
async def dialect_notification_poll(call: Call) -> web.Response:
    return await _poll(call, NOTIFICATION, call.params["id"])


@route(
    "GET",
    "/device/{id}/command/poll",
    params=DEVICE,
    query={**POLL, "returnUpdatedCommands": Flag()},
)
async def dialect_command_poll(call: Call) -> web.Response:
    return await _poll(call, COMMAND, call.params["id"])


# -- history and inserts -------------------------------------------------------------------


def _without_device_id(kind: str) -> dict[str, Any]:
    fields = history_listing(kind)
    del fields["deviceId"]
    return fields


async def _list(call: Call, kind: str) -> web.Response:
    items = await call.ctx.dh.history.page(
        call.principal, call.params["id"], history_query(kind, call.query)
    )
    return json_response([item.to_json() for item in items])


async def _one(call: Call, kind: str) -> web.Response:
    item_id = call.params["itemId"]
    items = await call.ctx.dh.history.page(
        call.principal, call.params["id"], Query(kind=kind, item_id=item_id, limit=1)
    )
    if not items:
        raise NotFound(f"{kind.capitalize()} {item_id} not found for device {call.params['id']}")
    return json_response(items[0].to_json())


ITEM = {**DEVICE, "itemId": Int(minimum=1)}
NOTIFICATION_BODY = Obj(
    {"notification": NAME, "parameters": AnyJson(), "timestamp": TIMESTAMP},
    required=["notification"],
    additional=True,
)
COMMAND_BODY = Obj(
    {
        "command": NAME,
        "parameters": AnyJson(),
        "lifetime": Int(minimum=0, maximum=INT32_MAX, nullable=True),
        "status": Str(max_length=256, nullable=True),
        "result": AnyJson(),
        "timestamp": TIMESTAMP,
    },
    required=["command"],
    additional=True,
)
UPDATE_BODY = Obj(
    {"status": Str(max_length=256, nullable=True), "result": AnyJson()}, additional=True
)


@route("GET", "/device/{id}/notification", params=DEVICE, query=_without_device_id(NOTIFICATION))
async def dialect_notification_list(call: Call) -> web.Response:
    return await _list(call, NOTIFICATION)


@route("GET", "/device/{id}/notification/{itemId}", params=ITEM)
async def dialect_notification_get(call: Call) -> web.Response:
    return await _one(call, NOTIFICATION)


@route("POST", "/device/{id}/notification", params=DEVICE, body=NOTIFICATION_BODY)
async def dialect_notification_insert(call: Call) -> web.Response:
    body = call.body
    item = await call.ctx.dh.messages.insert_notification(
        call.principal,
        call.params["id"],
        body["notification"],
        body.get("parameters"),
        None if "timestamp" not in body else item_timestamp(body["timestamp"], "timestamp"),
    )
    return json_response({"id": item.id, "timestamp": iso(item.timestamp)}, 201)


@route("GET", "/device/{id}/command", params=DEVICE, query=_without_device_id(COMMAND))
async def dialect_command_list(call: Call) -> web.Response:
    return await _list(call, COMMAND)


@route("GET", "/device/{id}/command/{itemId}", params=ITEM)
async def dialect_command_get(call: Call) -> web.Response:
    return await _one(call, COMMAND)


@route("POST", "/device/{id}/command", params=DEVICE, body=COMMAND_BODY)
async def dialect_command_insert(call: Call) -> web.Response:
    fields = {key: call.body[key] for key in COMMAND_BODY.properties if key in call.body}
    stamp = fields.get("timestamp")
    fields["timestamp"] = None if stamp is None else item_timestamp(stamp, "timestamp")
    item = await call.ctx.dh.messages.insert_command(call.principal, call.params["id"], fields)
    return json_response(
        {
            "id": item.id,
            "timestamp": iso(item.timestamp),
            "lastUpdated": iso(item.last_updated),
            "userId": item.user_id,
        },
        201,
    )


@route("PUT", "/device/{id}/command/{itemId}", params=ITEM, body=UPDATE_BODY)
async def dialect_command_update(call: Call) -> web.Response:
    fields: dict[str, Any] = {k: call.body[k] for k in ("status", "result") if k in call.body}
    await call.ctx.dh.messages.update_command(
        call.principal, call.params["id"], call.params["itemId"], fields
    )
    return no_content()
