"""The WebSocket wire protocol (DeviceHive's envelope), close codes and timestamps."""

from __future__ import annotations

import enum
from typing import Any

import orjson


class CloseCode(enum.IntEnum):
    """Every code the server closes with. 4000-range where RFC 6455 has none."""

    GOING_AWAY = 1001
    """The server is shutting down; reconnect to another instance."""
    POLICY_VIOLATION = 1008
    """Too many consecutive error replies."""
    MESSAGE_TOO_BIG = 1009
    """An inbound message exceeded the size limit."""
    INTERNAL_ERROR = 1011
    """An unexpected server error (never expected; reported in the server log)."""
    AUTH_TIMEOUT = 4000
    """Not authenticated within the authentication timeout."""
    INVALID_TOKEN = 4001
    """The token on the upgrade request was invalid."""
    TOKEN_EXPIRED = 4002
    """The token expired and no fresh one came within the grace window."""
    TOKEN_REVOKED = 4003
    """The token was revoked (logout, user disabled/deleted, role or password changed)."""
    SESSION_TERMINATED = 4004
    """An administrator ended the session (DELETE /v1/sessions/{id})."""
    SLOW_CONSUMER = 4008
    """The client did not read fast enough; its outbound queue hit the limit."""
    RATE_LIMITED = 4029
    """The client kept sending above its message rate after being told to slow down."""


def success(action: str, request_id: Any, payload: dict[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {"action": action, "requestId": request_id, "status": "success"}
    if payload:
        body.update(payload)
    return orjson.dumps(body)


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
