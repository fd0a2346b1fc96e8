"""DeviceHive's shapes of users and networks, and its history listings, mapped once for the
WebSocket actions and the /api/rest dialect so both answer alike."""

from __future__ import annotations

from typing import Any

from gateway.errors import Unprocessable
from gateway.limits import parse_timestamp
from gateway.listing import paging
from gateway.schema import DEVICE_ID, Str
from gateway.store.devicetypes import TypeAccess
from gateway.store.history import Query
from gateway.types import COMMAND, Device, Network, User

ROLE_IDS = {"admin": 0, "client": 1}
ROLE_NAMES = {value: key for key, value in ROLE_IDS.items()}
STATUS_IDS = {"active": 0, "locked": 1, "disabled": 2}
STATUS_NAMES = {value: key for key, value in STATUS_IDS.items()}


def user_json(user: User, access: TypeAccess) -> dict[str, Any]:
    """DeviceHive's user: the login is the email, role and status are numbers; ``name`` and
    ``networkIds`` are ours, added."""
    return {
        "id": user.id,
        "login": user.email,
        "name": user.name,
        "role": ROLE_IDS[user.role],
        "status": STATUS_IDS[user.status],
        "lastLogin": None,
        "data": None,
        "introReviewed": True,
        "allDeviceTypesAvailable": access.all,
        "networkIds": list(user.network_ids),
    }


def network_json(network: Network, devices: list[Device]) -> dict[str, Any]:
    """network/get's network: with the devices in it the caller may see."""
    return {**network.to_json(), "devices": [device.to_json() for device in devices]}


def user_filters(request: dict[str, Any]) -> dict[str, Any]:
    """user/list's filters as the catalog store's (the login is the email)."""
    return {
        "name": request.get("login"),
        "name_pattern": request.get("loginPattern"),
        "role": ROLE_NAMES.get(request["role"]) if "role" in request else None,
        "status": STATUS_NAMES.get(request["status"]) if "status" in request else None,
    }


# -- history -----------------------------------------------------------------------------

NAME = Str(min_length=1, max_length=256)
TIMESTAMP = Str(max_length=64, description="ISO-8601; UTC unless it carries a zone")


def timestamp_of(value: str | None, field: str) -> float | None:
    """A time to read from (years 1-9999, what every layer can carry)."""
    return None if value is None else parse_timestamp(value, field)


MAX_HISTORY_SKIP = 10_000
"""A history page is merged with the pending items in memory, so its window stays small."""

DEFAULT_TAKE = 100


def history_listing(kind: str) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "deviceId": DEVICE_ID,
        "start": TIMESTAMP,
        "end": TIMESTAMP,
        kind: NAME,
        **paging(["timestamp", kind], max_skip=MAX_HISTORY_SKIP),
    }
    if kind == COMMAND:
        fields["status"] = Str(max_length=256)
    return fields


def history_query(kind: str, request: dict[str, Any]) -> Query:
    since = timestamp_of(request.get("start"), "start")
    until = timestamp_of(request.get("end"), "end")
    if since is not None and until is not None and until < since:
        raise Unprocessable("end: must not be before start")
    return Query(
        kind=kind,
        names=[request[kind]] if kind in request else None,
        status=request.get("status"),
        # DeviceHive's start is inclusive: one microsecond earlier, exclusively.
        since=None if since is None else since - 1e-6,
        until=until,
        sort="name" if request.get("sortField") == kind else "timestamp",
        descending=request.get("sortOrder") == "DESC",
        limit=request.get("take", DEFAULT_TAKE),
        offset=request.get("skip", 0),
    )
