"""The dispatcher: parses, rate-limits, authorizes and runs one inbound WebSocket message.

Actions declare themselves with ``action`` (name, schema, whether they need a live token); the
dispatcher never lets a message crash the session: every failure becomes an error reply.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from gateway.auth.login import AuthService
from gateway.auth.revocation import RevocationView
from gateway.config import Settings
from gateway.devices.access import Access
from gateway.devices.devices import Devices
from gateway.devices.messages import Messages
from gateway.devices.registry import Registry
from gateway.errors import (
    BadRequest,
    GatewayError,
    TokenExpired,
    TokenRevoked,
    Unauthorized,
    Unprocessable,
)
from gateway.http import DATABASE_UNAVAILABLE, Outage
from gateway.realtime.hub import Hub
from gateway.realtime.protocol import error, success
from gateway.realtime.session import Session
from gateway.schema import AnyJson, Obj, Schema, Str
from gateway.types import CloseCode, Principal

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Context:
    """What WebSocket actions may use: the use cases, the caches and this instance's hub."""

    settings: Settings
    auth: AuthService
    view: RevocationView
    registry: Registry
    hub: Hub
    access: Access
    devices: Devices
    messages: Messages
    outage: Outage
    """True for an error that means the database is down (reply 503), False for a bug."""


After = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class Reply:
    payload: dict[str, Any]
    after: After | None = None
    """Run once the success reply is queued (a replay follows its subscribe reply)."""


Handler = Callable[[Context, Session, dict[str, Any]], Awaitable[Reply | dict[str, Any] | None]]


@dataclass(frozen=True, slots=True)
class ActionSpec:
    handler: Handler
    schema: Obj
    needs_token: bool = True
    plain: Callable[[dict[str, Any]], bool] | None = None
    """A cheap test that the request is certainly valid (the generic walk is then skipped; when
    it says no, the generic walk runs and names the problem)."""


ACTIONS: dict[str, ActionSpec] = {}


def action(
    name: str,
    schema: dict[str, Schema],
    required: tuple[str, ...] = (),
    needs_token: bool = True,
    plain: Callable[[dict[str, Any]], bool] | None = None,
) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ACTIONS[name] = ActionSpec(
            handler=handler,
            # Extra fields are tolerated: DeviceHive clients send some we do not use.
            schema=Obj(
                {"action": Str(), "requestId": AnyJson(), **schema}, required, additional=True
            ),
            needs_token=needs_token,
            plain=plain,
        )
        return handler

    return register


def principal_of(session: Session) -> Principal:
    """The session's principal, in an action that declared ``needs_token``."""
    principal = session.principal
    assert principal is not None
    return principal


def _envelope(raw: str | bytes) -> tuple[Any, Any]:
    """The action and requestId of a request, when it has them: a rate-limited client waiting
    for the reply to its requestId must get its 429, not a reply it cannot match."""
    try:
        request = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(request, dict):
        return None, None
    action_name = request.get("action")
    return (action_name if isinstance(action_name, str) else None), request.get("requestId")


def _may_hold_nul(raw: str | bytes) -> bool:
    """JSON carries NUL only escaped; PostgreSQL refuses it, so such input gets the full check."""
    return ("\\u0000" in raw) if isinstance(raw, str) else (b"\\u0000" in raw)


class Dispatcher:
    """One dispatcher serves every socket (it holds no per-session state)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def handle(self, session: Session, raw: str | bytes) -> None:
        if session.closing:
            return
        settings = self.ctx.settings
        if not session.take_token():
            session.rejected += 1
            if session.rejected > settings.ws_burst:
                session.close(CloseCode.RATE_LIMITED, "rate limit exceeded")
            else:
                refused, refused_id = _envelope(raw)
                session.send(error(refused, refused_id, 429, "Rate limit exceeded; slow down"))
            return
        session.rejected = 0
        action_name: Any = None
        request_id: Any = None
        try:
            try:
                request = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise BadRequest("Malformed JSON") from None
            if not isinstance(request, dict):
                raise BadRequest("A request must be a JSON object")
            action_name = request.get("action")
            request_id = request.get("requestId")
            spec = ACTIONS.get(action_name) if isinstance(action_name, str) else None
            if spec is None:
                raise BadRequest(f"Unknown action: {action_name!r}")
            if spec.needs_token:
                self._check_token(session)
            if spec.plain is None or _may_hold_nul(raw) or not spec.plain(request):
                try:
                    request = spec.schema.check(request, "")
                except Unprocessable as exc:
                    raise BadRequest(exc.message) from None
            result = await spec.handler(self.ctx, session, request)
        except GatewayError as exc:
            session.send(error(action_name, request_id, exc.status, exc.message))
            if exc.status == 503:
                return  # the gateway's trouble, not the client's: no strike against the session
            session.errors += 1
            if session.errors >= settings.ws_max_errors:
                session.close(CloseCode.POLICY_VIOLATION, "too many errors")
            return
        except Exception as exc:
            if self.ctx.outage(exc):  # logged once per outage by whoever tracks it
                session.send(error(action_name, request_id, 503, DATABASE_UNAVAILABLE))
                return
            log.exception("session %s: action %r failed", session.id, action_name)
            session.send(error(action_name, request_id, 500, "Internal server error"))
            return
        session.errors = 0
        reply = result if isinstance(result, Reply) else Reply(result or {})
        session.send(success(action_name, request_id, reply.payload))
        if reply.after is not None:
            await reply.after()

    def _check_token(self, session: Session) -> None:
        principal = session.principal
        if principal is None:
            raise Unauthorized("Not authenticated: send authenticate with an access token")
        if session.expired:
            raise TokenExpired()
        if self.ctx.view.is_revoked(principal):
            session.close(CloseCode.TOKEN_REVOKED, "token revoked")
            raise TokenRevoked()


DISPATCHER_KEY: web.AppKey[Dispatcher] = web.AppKey("dispatcher", Dispatcher)
