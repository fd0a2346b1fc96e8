"""WebSocket actions over a device's stored notifications and commands (list, get) and device
deletion, in DeviceHive's request and reply shapes; the rules are the use cases'."""

from __future__ import annotations

from typing import Any

from gateway.devices.devicehive import history_listing, history_query
from gateway.errors import NotFound
from gateway.realtime.dispatcher import Context, action, principal_of
from gateway.realtime.session import Session
from gateway.schema import DEVICE_ID, Int
from gateway.store.history import Query
from gateway.types import COMMAND, NOTIFICATION


@action("notification/list", history_listing(NOTIFICATION), ("deviceId",))
async def notification_list(
    ctx: Context, session: Session, request: dict[str, Any]
) -> dict[str, Any]:
    items = await ctx.dh.history.page(
        principal_of(session), request["deviceId"], history_query(NOTIFICATION, request)
    )
    return {"notifications": [item.to_json() for item in items]}


@action("command/list", history_listing(COMMAND), ("deviceId",))
async def command_list(ctx: Context, session: Session, request: dict[str, Any]) -> dict[str, Any]:
    items = await ctx.dh.history.page(
        principal_of(session), request["deviceId"], history_query(COMMAND, request)
    )
    return {"commands": [item.to_json() for item in items]}


async def _one(
    ctx: Context, session: Session, device_id: str, kind: str, item_id: int
) -> dict[str, Any]:
    items = await ctx.dh.history.page(
        principal_of(session), device_id, Query(kind=kind, item_id=item_id, limit=1)
    )
    if not items:
        raise NotFound(f"{kind.capitalize()} {item_id} not found for device {device_id}")
    return items[0].to_json()


@action(
    "notification/get",
    {"deviceId": DEVICE_ID, "notificationId": Int(minimum=1)},
    ("deviceId", "notificationId"),
)
async def notification_get(
    ctx: Context, session: Session, request: dict[str, Any]
) -> dict[str, Any]:
    found = await _one(ctx, session, request["deviceId"], NOTIFICATION, request["notificationId"])
    return {"notification": found}


@action(
    "command/get",
    {"deviceId": DEVICE_ID, "commandId": Int(minimum=1)},
    ("deviceId", "commandId"),
)
async def command_get(ctx: Context, session: Session, request: dict[str, Any]) -> dict[str, Any]:
    found = await _one(ctx, session, request["deviceId"], COMMAND, request["commandId"])
    return {"command": found}


@action("device/delete", {"deviceId": DEVICE_ID}, ("deviceId",))
async def device_delete(ctx: Context, session: Session, request: dict[str, Any]) -> None:
    await ctx.devices.delete_device(principal_of(session), request["deviceId"])
