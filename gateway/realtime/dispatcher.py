"""The dispatcher: parses, rate-limits, authorizes and runs one inbound WebSocket message.

Actions declare themselves with ``action`` (name, schema, whether they need a live token); the
dispatcher never lets a message crash the session: every failure becomes an error reply.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from gateway.auth.login import AuthService
from gateway.auth.plugins import PLUGIN_ACTIONS, refuse_plugin
from gateway.auth.revocation import RevocationView
from gateway.config import Settings
from gateway.devices.access import Access
from gateway.devices.catalog import CatalogService
from gateway.devices.devices import Devices
from gateway.devices.devicetypes import DeviceTypeService
from gateway.devices.history import HistoryService
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
from gateway.limits import loads
from gateway.metrics import Metrics
from gateway.realtime.hub import Hub
from gateway.realtime.protocol import error, success, success_with
from gateway.realtime.session import Session
from gateway.schema import AnyJson, Obj, Schema, Str
from gateway.types import CloseCode, Principal

log = logging.getLogger(__name__)


@dataclass(slots=True)
class DeviceHiveContext:
    """The DeviceHive surface's use cases, as its WebSocket actions use them."""

    device_types: DeviceTypeService
    history: HistoryService
    catalog: CatalogService


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
    dh: DeviceHiveContext


After = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class Reply:
    payload: dict[str, Any]
    after: After | None = None
    """Run once the success reply is queued (a replay follows its subscribe reply)."""


Result = Reply | dict[str, Any] | bytes | None
"""An action's result: its reply payload, or (on the hot path) the payload's members already
serialized (``b'"notification":{...}'``), spliced into the reply as they are."""


@dataclass(slots=True)
class Later:
    """A request whose answer may wait (on other instances, on a database read before a replay):
    ``work`` runs in a task of the session's, so the socket keeps reading, and its outcome is the
    reply."""

    work: Callable[[], Awaitable[Result]]
    abandon: Callable[[], None] | None = None
    """Undoes what the handler did before deferring, when ``work`` is refused."""


MAX_LATER = 16
"""Requests of one session that may wait at once; more get a 429 error reply."""

Handler = Callable[[Context, Session, dict[str, Any]], Awaitable[Result | Later]]

Now = Callable[[Context, Session, dict[str, Any]], bytes | None]
"""An action's answer from the caches alone, without a coroutine (the hot path): None when it
must wait on something, and then it has done nothing and the handler runs."""


@dataclass(frozen=True, slots=True)
class ActionSpec:
    handler: Handler
    schema: Obj
    needs_token: bool = True
    plain: Callable[[dict[str, Any]], bool] | None = None
    """A cheap test that the request is certainly valid (the generic walk is then skipped; when
    it says no, the generic walk runs and names the problem)."""
    now: Now | None = None


ACTIONS: dict[str, ActionSpec] = {}


def action(
    name: str,
    schema: dict[str, Schema],
    required: tuple[str, ...] = (),
    needs_token: bool = True,
    plain: Callable[[dict[str, Any]], bool] | None = None,
    now: Now | None = None,
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
            now=now,
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
        request = loads(raw)
    except (orjson.JSONDecodeError, GatewayError):
        return None, None
    if not isinstance(request, dict):
        return None, None
    action_name = request.get("action")
    return (action_name if isinstance(action_name, str) else None), request.get("requestId")


_DENIED = frozenset({401, 403, 429})


def _denied_reason(exc: GatewayError) -> str:
    if isinstance(exc, TokenExpired):
        return "token_expired"
    if isinstance(exc, TokenRevoked):
        return "token_revoked"
    return {429: "login_throttled", 403: "forbidden"}.get(exc.status, "unauthenticated")


class Dispatcher:
    """One dispatcher serves every socket (it holds no per-session state)."""

    def __init__(self, ctx: Context, metrics: Metrics) -> None:
        self.ctx = ctx
        self._received = metrics.messages_by_action(ACTIONS)
        self._denied = metrics.denied_by_reason

    async def handle(self, session: Session, raw: str | bytes) -> None:
        if session.closing:
            return
        settings = self.ctx.settings
        if not session.take_token():
            session.rejected += 1
            self._denied["rate_limited"].inc()
            if session.rejected > settings.ws_burst:
                self._received[""].inc()
                session.close(CloseCode.RATE_LIMITED, "rate limit exceeded")
            else:
                refused, refused_id = _envelope(raw)
                self._received[refused if refused in self._received else ""].inc()
                session.send(error(refused, refused_id, 429, "Rate limit exceeded; slow down"))
            return
        action_name: Any = None
        request_id: Any = None
        spec: ActionSpec | None = None
        try:
            try:
                request = loads(raw)
            except orjson.JSONDecodeError:
                raise BadRequest("Malformed JSON") from None
            if not isinstance(request, dict):
                raise BadRequest("A request must be a JSON object")
            action_name = request.get("action")
            request_id = request.get("requestId")
            spec = ACTIONS.get(action_name) if isinstance(action_name, str) else None
            if spec is None:
                raise BadRequest(f"Unknown action: {action_name!r}")
            self._received[action_name].value += 1
            if spec.needs_token:
                self._check_token(session)
            principal = session.principal
            if (
                principal is not None
                and principal.scope.topic is not None
                and action_name not in PLUGIN_ACTIONS
            ):
                refuse_plugin(principal, action_name)
            plain = spec.plain
            # JSON carries NUL only escaped; PostgreSQL refuses it, so such input gets the
            # full check.
            if (
                plain is None
                or ("\\u0000" in raw if type(raw) is str else b"\\u0000" in raw)
                or not plain(request)
            ):
                try:
                    request = spec.schema.check(request, "")
                except Unprocessable as exc:
                    raise BadRequest(exc.message) from None
            now = spec.now
            answered = None if now is None else now(self.ctx, session, request)
            result = (
                await spec.handler(self.ctx, session, request) if answered is None else answered
            )
        except GatewayError as exc:
            if spec is None:
                self._received[""].inc()
            elif exc.status in _DENIED:
                self._denied[_denied_reason(exc)].inc()
            self._failed(session, action_name, request_id, exc)
            return
        except Exception as exc:  # noqa: BLE001 - logged (or a 503) by _crashed
            self._crashed(session, action_name, request_id, exc)
            return
        if isinstance(result, Later):
            if not session.start(self._later(session, action_name, request_id, result), MAX_LATER):
                if result.abandon is not None:
                    result.abandon()
                session.send(
                    error(action_name, request_id, 429, "Too many requests in progress; wait")
                )
            return
        after = self._succeeded(session, action_name, request_id, result)
        if after is not None:
            session.start(self._after(session, action_name, after), sys.maxsize)

    def _failed(
        self, session: Session, action_name: Any, request_id: Any, exc: GatewayError
    ) -> None:
        session.send(error(action_name, request_id, exc.status, exc.message))
        if exc.status == 503:
            return  # the gateway's trouble, not the client's: no strike against the session
        session.errors += 1
        if session.errors >= self.ctx.settings.ws_max_errors:
            session.close(CloseCode.POLICY_VIOLATION, "too many errors")

    def _crashed(self, session: Session, action_name: Any, request_id: Any, exc: Exception) -> None:
        if self.ctx.outage(exc):  # logged once per outage by whoever tracks it
            session.send(error(action_name, request_id, 503, DATABASE_UNAVAILABLE))
            return
        log.exception("session %s: action %r failed", session.id, action_name)
        session.send(error(action_name, request_id, 500, "Internal server error"))

    def _succeeded(
        self, session: Session, action_name: Any, request_id: Any, result: Result
    ) -> After | None:
        """Send the success reply; returns what is to run after it."""
        session.errors = 0
        if isinstance(result, bytes):
            session.send(success_with(action_name, request_id, result))
            return None
        reply = result if isinstance(result, Reply) else Reply(result or {})
        session.send(success(action_name, request_id, reply.payload))
        return reply.after

    async def _later(
        self, session: Session, action_name: Any, request_id: Any, later: Later
    ) -> None:
        try:
            result = await later.work()
        except GatewayError as exc:
            self._failed(session, action_name, request_id, exc)
            return
        except Exception as exc:  # noqa: BLE001 - logged (or a 503) by _crashed
            self._crashed(session, action_name, request_id, exc)
            return
        if session.closing:
            return
        after = self._succeeded(session, action_name, request_id, result)
        if after is not None:
            await self._after(session, action_name, after)

    async def _after(self, session: Session, action_name: Any, after: After) -> None:
        """What follows a success reply (a replay): a failure there can no longer be the reply,
        so the session is closed with 1011 (documented) and the failure logged."""
        try:
            await after()
        except Exception:
            log.exception("session %s: %r failed after its reply", session.id, action_name)
            session.close(CloseCode.INTERNAL_ERROR, "internal error")

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
