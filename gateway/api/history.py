"""REST: a device's notifications and commands, listed with a cursor or long-polled."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from gateway.api.devices import DEVICE_PATH
from gateway.api.routing import ROUTES, Call
from gateway.devices.history import DEFAULT_WAIT, MAX_WAIT
from gateway.errors import Unprocessable
from gateway.http import MAX_QUERY_TEXT, json_response
from gateway.limits import parse_timestamp
from gateway.schema import DEVICE_ID, AnyJson, Array, Int, Obj, Schema, Str
from gateway.store.history import Item, Query, cursor_of, parse_cursor
from gateway.types import Action

MAX_NAMES = 256
MAX_NAME = 256
MAX_LIMIT = 1000

TIMESTAMP_QUERY = Str(min_length=1, max_length=64, description="ISO-8601; UTC unless zoned")
NAMES_QUERY = Str(
    min_length=1,
    max_length=MAX_QUERY_TEXT,
    description=f"comma-separated names (at most {MAX_NAMES}, and {MAX_QUERY_TEXT:,} characters)",
)
CURSOR_QUERY = Str(
    min_length=1, max_length=64, description="the cursor of the previous page (opaque)"
)


def names_of(text: str | None, field: str = "names") -> list[str] | None:
    """``a,b,c`` as a list; empty parts are dropped, oversized ones refused."""
    if text is None:
        return None
    names = [name for name in text.split(",") if name]
    if not names:
        return None
    if len(names) > MAX_NAMES:
        raise Unprocessable(f"{field}: at most {MAX_NAMES} names")
    if any(len(name) > MAX_NAME for name in names):
        raise Unprocessable(f"{field}: a name is at most {MAX_NAME} characters")
    return names


def timestamp_of(text: str | None, field: str) -> float | None:
    return None if text is None else parse_timestamp(text, field)


def query_of(kind: str, params: Mapping[str, Any], limit: int) -> Query:
    return Query(
        kind=kind,
        names=names_of(params.get("names")),
        status=params.get("status"),
        since=timestamp_of(params.get("since"), "since"),
        until=timestamp_of(params.get("until"), "until"),
        after=None if "cursor" not in params else parse_cursor(params["cursor"]),
        descending=params.get("order") == "desc",
        limit=params.get("limit", limit),
    )


def page_body(key: str, items: list[Item], cursor: str | None) -> dict[str, Any]:
    return {key: [item.to_json() for item in items], "cursor": cursor}


NOTIFICATION = Obj(
    {
        "id": Int(),
        "deviceId": DEVICE_ID,
        "networkId": Int(),
        "deviceTypeId": Int(nullable=True),
        "notification": Str(),
        "parameters": AnyJson(),
        "timestamp": Str(format="date-time"),
    },
    required=["id", "deviceId", "networkId", "deviceTypeId", "notification", "timestamp"],
)
COMMAND = Obj(
    {
        "id": Int(),
        "deviceId": DEVICE_ID,
        "networkId": Int(),
        "deviceTypeId": Int(nullable=True),
        "userId": Int(nullable=True),
        "command": Str(),
        "parameters": AnyJson(),
        "lifetime": Int(nullable=True),
        "timestamp": Str(format="date-time"),
        "lastUpdated": Str(format="date-time"),
        "status": Str(nullable=True),
        "result": AnyJson(),
    },
    required=["id", "deviceId", "networkId", "command", "timestamp", "lastUpdated"],
)

KINDS: dict[str, tuple[str, Obj, Action]] = {
    "notification": ("notifications", NOTIFICATION, Action.GetDeviceNotification),
    "command": ("commands", COMMAND, Action.GetDeviceCommand),
}

LIST_QUERY: dict[str, Schema] = {
    "since": TIMESTAMP_QUERY,
    "until": TIMESTAMP_QUERY,
    "names": NAMES_QUERY,
    "limit": Int(minimum=1, maximum=MAX_LIMIT),
    "cursor": CURSOR_QUERY,
    "order": Str(enum=["asc", "desc"], description="by timestamp, then id; asc by default"),
}
POLL_QUERY: dict[str, Schema] = {
    "since": TIMESTAMP_QUERY,
    "names": NAMES_QUERY,
    "limit": Int(minimum=1, maximum=MAX_LIMIT),
    "cursor": CURSOR_QUERY,
    "waitTimeout": Int(
        minimum=0,
        maximum=int(MAX_WAIT),
        description=f"seconds to wait for a first item (default {DEFAULT_WAIT:g})",
    ),
}
STATUS_QUERY = {"status": Str(max_length=256, description="only commands in this status")}


def _register(kind: str) -> None:
    key, item_schema, needed = KINDS[kind]
    page = Obj(
        {"cursor": Str(nullable=True), key: Array(item_schema, max_items=MAX_LIMIT)},
        required=[key, "cursor"],
    )
    extra = STATUS_QUERY if kind == "command" else {}

    async def list_items(call: Call) -> web.Response:
        query = query_of(kind, call.query, 100)
        items = await call.ctx.dh.history.page(call.principal, call.params["id"], query)
        cursor = cursor_of(items[-1]) if items and len(items) == query.limit else None
        return json_response(page_body(key, items, cursor))

    async def poll_items(call: Call) -> web.Response:
        query = query_of(kind, call.query, MAX_LIMIT)
        wait = call.query.get("waitTimeout", DEFAULT_WAIT)
        items = await call.ctx.dh.history.poll(call.principal, call.params["id"], query, wait)
        cursor = cursor_of(items[-1]) if items else call.query.get("cursor")
        return json_response(page_body(key, items, cursor))

    list_items.__name__ = f"list_{key}"
    poll_items.__name__ = f"poll_{key}"
    ROUTES.route(
        "GET",
        f"/v1/devices/{{id}}/{key}",
        summary=f"The device's {key}, oldest first (order=desc: newest first); "
        "pass the cursor back for the next page (null: no more)",
        tag="history",
        params=DEVICE_PATH,
        query={**LIST_QUERY, **extra},
        permission=needed,
        responses={200: page, 404: None},
    )(list_items)
    ROUTES.route(
        "GET",
        f"/v1/devices/{{id}}/{key}/poll",
        summary=f"Long poll: the device's {key} after the cursor (or since; else from now), "
        "waiting up to waitTimeout seconds for the first; the cursor to pass next time",
        tag="history",
        params=DEVICE_PATH,
        query={**POLL_QUERY, **extra},
        permission=needed,
        responses={200: page, 404: None, 429: None},
    )(poll_items)


_register("notification")
_register("command")
