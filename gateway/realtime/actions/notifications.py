"""notification/insert, with a fast path that recognises the usual request in a few checks."""

from __future__ import annotations

import re
from typing import Any

from gateway.clock import iso
from gateway.realtime.actions.fields import NAME, TIMESTAMP, timestamp
from gateway.realtime.dispatcher import Context, action, principal_of
from gateway.realtime.session import Session
from gateway.schema import DEVICE_ID, DEVICE_ID_PATTERN, AnyJson, Obj
from gateway.types import Notification

NOTIFICATION_BODY = Obj(
    {"notification": NAME, "parameters": AnyJson(), "timestamp": TIMESTAMP},
    ("notification",),
    additional=True,
)


_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)
_NOTIFICATION_KEYS = frozenset({"notification", "parameters", "timestamp"})


def _plain_notification(request: dict[str, Any]) -> bool:
    """The usual notification/insert, recognised in a few type checks (the hot path)."""
    device_id = request.get("deviceId")
    body = request.get("notification")
    if type(device_id) is not str or type(body) is not dict or not _DEVICE_ID.fullmatch(device_id):
        return False
    name = body.get("notification")
    stamp = body.get("timestamp")
    return (
        type(name) is str
        and 0 < len(name) <= 256
        and body.keys() <= _NOTIFICATION_KEYS
        and (stamp is None or (type(stamp) is str and len(stamp) <= 64))
    )


def _acknowledged(item: Notification) -> bytes:
    return b'"notification":{"id":%d,"timestamp":"%s"}' % (item.id, iso(item.timestamp).encode())


def _insert_now(ctx: Context, session: Session, request: dict[str, Any]) -> bytes | None:
    body = request["notification"]
    stamp = body.get("timestamp")
    item = ctx.messages.insert_notification_now(
        principal_of(session),
        request["deviceId"],
        body["notification"],
        body.get("parameters"),
        None if stamp is None else timestamp(stamp, "notification.timestamp"),
    )
    return None if item is None else _acknowledged(item)


@action(
    "notification/insert",
    {"deviceId": DEVICE_ID, "notification": NOTIFICATION_BODY},
    ("deviceId", "notification"),
    plain=_plain_notification,
    now=_insert_now,
)
async def notification_insert(ctx: Context, session: Session, request: dict[str, Any]) -> bytes:
    body = request["notification"]
    item = await ctx.messages.insert_notification(
        principal_of(session),
        request["deviceId"],
        body["notification"],
        body.get("parameters"),
        timestamp(body.get("timestamp"), "notification.timestamp"),
    )
    return _acknowledged(item)
