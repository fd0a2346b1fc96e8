"""DeviceHive's token payload (token/create): declared and mapped onto a mint request once, for
the WebSocket action and the /api/rest dialect."""

from __future__ import annotations

import time
from typing import Any

from gateway.auth.minting import MintRequest
from gateway.auth.permissions import parse_actions
from gateway.clock import parse_iso
from gateway.errors import Unprocessable
from gateway.schema import Array, Int, Obj, OneOf, Str
from gateway.types import WILDCARD

ID = Int(minimum=1)

WILDCARD_LIST = Array(Str(enum=[WILDCARD]), min_items=1, max_items=1)
TOKEN_PAYLOAD = Obj(
    {
        "userId": ID,
        "actions": OneOf([WILDCARD_LIST, Array(OneOf([Int(), Str(max_length=64)]), max_items=64)]),
        "networkIds": OneOf([WILDCARD_LIST, Array(ID, max_items=1000)], nullable=True),
        "deviceIds": OneOf(
            [WILDCARD_LIST, Array(Str(min_length=1, max_length=64), max_items=1000)],
            nullable=True,
        ),
        "deviceTypeIds": OneOf([WILDCARD_LIST, Array(ID, max_items=0)], nullable=True),
        "expiration": Str(min_length=1, max_length=64),
    },
    additional=True,
    description="deviceTypeIds: tokens are not scoped by device type; only null or ['*']",
)


def _wildcard(values: list[Any] | None) -> frozenset[Any] | None:
    return None if values is None or values == [WILDCARD] else frozenset(values)


def mint_request(payload: dict[str, Any]) -> MintRequest:
    """DeviceHive's token payload as a mint request (shared with the REST dialect)."""
    expires_in = None
    if "expiration" in payload:
        try:
            expires_in = parse_iso(payload["expiration"]) - time.time()
        except ValueError:
            raise Unprocessable(
                f"payload.expiration: not an ISO-8601 timestamp: {payload['expiration']!r}"
            ) from None
        if expires_in <= 0:
            raise Unprocessable("payload.expiration: must be in the future")
    actions = payload.get("actions")
    return MintRequest(
        user_id=payload.get("userId"),
        actions=None if actions is None or actions == [WILDCARD] else parse_actions(actions),
        network_ids=_wildcard(payload.get("networkIds")),
        device_ids=_wildcard(payload.get("deviceIds")),
        expires_in=expires_in,
    )
