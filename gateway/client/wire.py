"""The wire-level terms of the client's socket: which requests may be sent again, the close codes
that end a session, and how a lost reply is told apart from an error reply."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SAFE = frozenset(
    {
        "server/info",
        "authenticate",
        "token/refresh",
        "device/get",
        "device/list",
        "subscription/list",
        "notification/unsubscribe",
        "command/unsubscribe",
    }
)
"""Requests that change nothing (or nothing twice): resent after a reconnect. Any other request
whose reply was lost raises :class:`OutcomeUnknown` instead."""

REVOKED = 4003
EXPIRED = 4002
INVALID = 4001


class Dropped(Exception):
    """The socket ended before the reply; ``sent`` says whether the request had been written."""

    def __init__(self, sent: bool) -> None:
        self.sent = sent


class NoReply(Exception):
    """The reply did not come in time."""


@dataclass(slots=True)
class Pending:
    action: str
    future: asyncio.Future[dict[str, Any]]
    on_success: Callable[[dict[str, Any]], None] | None
