"""command/insert and command/update."""

from __future__ import annotations

from typing import Any

from gateway.clock import iso
from gateway.errors import NotFound
from gateway.limits import INT32_MAX
from gateway.realtime.actions.fields import NAME, TIMESTAMP, timestamp
from gateway.realtime.dispatcher import Context, Later, action, principal_of
from gateway.realtime.session import Session
from gateway.schema import DEVICE_ID, AnyJson, Int, Obj, Str

COMMAND_BODY = Obj(
    {
        "command": NAME,
        "parameters": AnyJson(),
        "lifetime": Int(minimum=0, maximum=INT32_MAX, nullable=True),
        "status": Str(max_length=256, nullable=True),
        "result": AnyJson(),
        "timestamp": TIMESTAMP,
    },
    ("command",),
    additional=True,
)


@action("command/insert", {"deviceId": DEVICE_ID, "command": COMMAND_BODY}, ("deviceId", "command"))
async def command_insert(ctx: Context, session: Session, request: dict[str, Any]) -> dict[str, Any]:
    body = dict(request["command"])
    body["timestamp"] = timestamp(body.get("timestamp"), "command.timestamp")
    item = await ctx.messages.insert_command(principal_of(session), request["deviceId"], body)
    return {
        "command": {
            "id": item.id,
            "timestamp": iso(item.timestamp),
            "lastUpdated": iso(item.last_updated),
            "userId": item.user_id,
        }
    }


UPDATE_BODY = Obj(
    {"status": Str(max_length=256, nullable=True), "result": AnyJson()}, additional=True
)


@action(
    "command/update",
    {"deviceId": DEVICE_ID, "commandId": Int(minimum=1), "command": UPDATE_BODY},
    ("deviceId", "commandId", "command"),
)
async def command_update(ctx: Context, session: Session, request: dict[str, Any]) -> Later | None:
    """A command another instance acknowledged a moment ago may not be written yet: that
    look-up waits for the flush barrier, off the read loop."""
    body = {k: v for k, v in request["command"].items() if k in ("status", "result")}
    messages = ctx.messages
    principal = principal_of(session)
    device_id, command_id = request["deviceId"], request["commandId"]
    try:
        await messages.update_command(principal, device_id, command_id, body)
    except NotFound:
        if not messages.handover.shared:
            raise
    else:
        return None

    async def look_further() -> None:
        await messages.update_command(principal, device_id, command_id, body, look_further=True)

    return Later(look_further)
