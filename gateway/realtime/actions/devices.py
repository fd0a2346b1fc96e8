"""device/get, device/list, device/save."""

from __future__ import annotations

from typing import Any

from gateway.listing import MAX_SKIP, MAX_TAKE
from gateway.realtime.actions.fields import NAME
from gateway.realtime.dispatcher import Context, action, principal_of
from gateway.realtime.session import Session
from gateway.schema import DEVICE_ID, AnyJson, Bool, Int, Obj
from gateway.types import Action

DEVICE_BODY = Obj(
    {
        "name": NAME,
        "data": AnyJson(),
        "networkId": Int(minimum=1),
        "deviceTypeId": Int(minimum=1, nullable=True),
        "isBlocked": Bool(),
        "id": DEVICE_ID,
    },
    additional=True,
)


@action("device/get", {"deviceId": DEVICE_ID}, ("deviceId",))
async def device_get(ctx: Context, session: Session, request: dict[str, Any]) -> dict[str, Any]:
    device = await ctx.devices.device_for(
        principal_of(session), request["deviceId"], Action.GetDevice
    )
    return {"device": device.to_json()}


@action(
    "device/list",
    {
        "networkId": Int(minimum=1),
        "take": Int(minimum=1, maximum=MAX_TAKE),
        "skip": Int(minimum=0, maximum=MAX_SKIP),
    },
)
async def device_list(ctx: Context, session: Session, request: dict[str, Any]) -> dict[str, Any]:
    devices = await ctx.devices.find_devices(
        principal_of(session),
        network_id=request.get("networkId"),
        limit=request.get("take", 1000),
        offset=request.get("skip", 0),
    )
    return {"devices": [device.to_json() for device in devices]}


@action("device/save", {"deviceId": DEVICE_ID, "device": DEVICE_BODY}, ("deviceId", "device"))
async def device_save(ctx: Context, session: Session, request: dict[str, Any]) -> None:
    fields = {k: v for k, v in request["device"].items() if k in DEVICE_BODY.properties}
    fields.pop("id", None)
    await ctx.devices.save_device(principal_of(session), request["deviceId"], fields)
