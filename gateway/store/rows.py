"""How notifications and commands are stored: their columns, their rows as domain items, and
what their free-form payloads weigh."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from gateway.types import COMMAND, NOTIFICATION, Command, Notification


def payload_bytes(value: Any) -> int:
    """A free-form payload's size as JSON: what the memory an item holds grows with."""
    if value is None:
        return 0
    if type(value) is str:
        return len(value)
    try:
        return len(orjson.dumps(value))
    except (orjson.JSONEncodeError, TypeError):
        return 0  # cannot be stored either: the writer dead-letters it at once


def without_payloads(columns: str) -> str:
    """``columns`` with a null in place of the free-form payloads (parameters, result): what
    many rows are read with when only some of them will be sent."""
    return columns.replace("parameters", "NULL::jsonb AS parameters").replace(
        "result,", "NULL::jsonb AS result,"
    )


def notification_of(row: Any) -> Notification:
    return Notification(
        id=row["id"],
        device_id=row["device_id"],
        network_id=row["network_id"],
        device_type_id=row["device_type_id"],
        notification=row["notification"],
        parameters=row["parameters"],
        timestamp=row["timestamp"].timestamp(),
    )


def command_of(row: Any) -> Command:
    return Command(
        id=row["id"],
        device_id=row["device_id"],
        network_id=row["network_id"],
        device_type_id=row["device_type_id"],
        user_id=row["user_id"],
        command=row["command"],
        parameters=row["parameters"],
        lifetime=row["lifetime"],
        status=row["status"],
        result=row["result"],
        timestamp=row["timestamp"].timestamp(),
        last_updated=row["last_updated"].timestamp(),
    )


_CLAMPED = """LEAST({0}, '9999-12-31T23:59:59.999Z'::timestamptz) AS {0}"""
"""A stored time Python cannot hold (year 10000, from before the edge limited timestamps)
read as the last one it can: a replay that covers such a row must not fail."""

_NOTIFICATION_COLUMNS = (
    "id, device_id, network_id, device_type_id, notification, parameters, "
    + _CLAMPED.format('"timestamp"')
)
COMMAND_COLUMNS = (
    "id, device_id, network_id, device_type_id, user_id, command, parameters, lifetime, "
    "status, result, " + _CLAMPED.format('"timestamp"') + ", " + _CLAMPED.format("last_updated")
)

KINDS: dict[str, tuple[str, str, str, Callable[[Any], Notification | Command]]] = {
    NOTIFICATION: ("notifications", "notification", _NOTIFICATION_COLUMNS, notification_of),
    COMMAND: ("commands", "command", COMMAND_COLUMNS, command_of),
}
