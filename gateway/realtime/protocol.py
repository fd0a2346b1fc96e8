"""The WebSocket wire protocol: DeviceHive's envelope of replies and pushes.

Close codes are domain types (``gateway.types.CloseCode``)."""

from __future__ import annotations

from typing import Any

import orjson


def success(action: str, request_id: Any, payload: dict[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {"action": action, "requestId": request_id, "status": "success"}
    if payload:
        body.update(payload)
    return orjson.dumps(body)


def success_with(action: str, request_id: Any, members: bytes) -> bytes:
    """``success`` with its payload's members already serialized: the same bytes, no dict."""
    return b"".join(
        (
            b'{"action":',
            orjson.dumps(action),
            b',"requestId":',
            orjson.dumps(request_id),
            b',"status":"success",',
            members,
            b"}",
        )
    )


def error(action: str | None, request_id: Any, code: int, message: str) -> bytes:
    return orjson.dumps(
        {
            "action": action,
            "requestId": request_id,
            "status": "error",
            "code": code,
            "error": message,
        }
    )


def push_parts(action: str, kind: bytes) -> tuple[bytes, bytes]:
    """What comes before a push's subscription id, and between it and the item."""
    return b'{"action":"' + action.encode() + b'","subscriptionId":', b',"' + kind + b'":'


def push(action: str, subscription_id: bytes, kind: bytes, item: bytes) -> bytes:
    """A push from pre-serialized parts, so one item serialized once reaches many sessions."""
    return b"".join(
        (
            b'{"action":"',
            action.encode(),
            b'","subscriptionId":',
            subscription_id,
            b',"',
            kind,
            b'":',
            item,
            b"}",
        )
    )
