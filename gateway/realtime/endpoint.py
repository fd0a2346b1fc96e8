"""GET /v1/ws: the upgrade, optional Bearer authentication, and the read loop."""

from __future__ import annotations

import logging
import sys

from aiohttp import WSMsgType, web

from gateway.errors import GatewayError
from gateway.http import (
    DATABASE_UNAVAILABLE,
    REQUEST_ID,
    RETRY_AFTER,
    client_address,
    error_response,
    request_id_of,
)
from gateway.logs import name_task
from gateway.realtime import actions  # noqa: F401 - registers every action
from gateway.realtime.actions.auth import admitted, authenticate_session
from gateway.realtime.dispatcher import DISPATCHER_KEY
from gateway.realtime.session import Session
from gateway.types import close_code_for

log = logging.getLogger(__name__)

WEBSOCKET_PATH = "/v1/ws"

_ENDS = frozenset({WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR})
"""What ends the read loop (``async for`` over the socket stops at the first three)."""


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


async def websocket(request: web.Request) -> web.StreamResponse:
    """The read loop. Its frame lives as long as the socket, so it keeps few locals and no
    bound methods, and drops each message once handled: an idle socket holds no copy of the
    last thing it said (often an ``authenticate`` carrying a token)."""
    opened = await _open(request)
    if not isinstance(opened, Session):
        return opened
    session = opened
    ws = session.ws
    dispatcher = request.app[DISPATCHER_KEY]
    heartbeat = dispatcher.ctx.hub.heartbeat
    try:
        while True:
            kind, data, _ = await ws.receive()
            if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
                await dispatcher.handle(session, data)
                data = None
            elif kind is WSMsgType.PONG:
                heartbeat.pong(session)
            elif kind is WSMsgType.PING:
                heartbeat.answer(session, data)
            elif kind in _ENDS:
                break
    finally:
        dispatcher.ctx.hub.remove(session)
    return ws


async def _open(request: web.Request) -> Session | web.StreamResponse:
    """The upgrade, the session, and Bearer authentication when the upgrade carries a token;
    an error response instead when there is no socket to serve."""
    ctx = request.app[DISPATCHER_KEY].ctx
    settings = ctx.settings
    hub = ctx.hub
    request_id = request_id_of(request)
    if hub.shutting_down:
        return error_response(503, "Server shutting down", request_id)
    token = _bearer(request)
    principal = None
    if token is not None:
        # Before the upgrade, so that an outage is a 503 instead of a socket dropped without a
        # close code; an invalid token gets its close code after the upgrade.
        try:
            principal = await admitted(ctx, token)
        except GatewayError:
            pass
        except Exception as exc:
            if not ctx.outage(exc):
                raise
            # As a REST request that needs PostgreSQL: 503, before there is a socket to close.
            response = error_response(503, DATABASE_UNAVAILABLE, request_id)
            response.headers["Retry-After"] = str(RETRY_AFTER)
            return response
    ws = web.WebSocketResponse(
        autoping=False,  # pings and pongs are the hub's Heartbeat's (realtime/heartbeat.py)
        # aiohttp refuses a message of max_msg_size bytes or more; the limit is inclusive.
        max_msg_size=settings.ws_max_message_bytes + 1,
        compress=False,
    )
    ws.headers[REQUEST_ID] = request_id
    try:
        await ws.prepare(request)
    except web.HTTPException as exc:
        return error_response(exc.status, "Expected a WebSocket upgrade request", request_id)
    # Clients behind one address (a NAT, a proxy) share one string for it.
    remote = sys.intern(client_address(request, settings.trusted_proxies))
    session = Session(ws, hub.session_env, remote)
    # The task is named after the session, which is how its log records carry the session's
    # id; the upgrade's request id is logged once with it.
    name_task(session.id)
    log.debug("session %s: opened by request %s from %s", session.id, request_id, remote)
    hub.add(session)
    if token is not None:
        try:
            await authenticate_session(ctx, session, token, principal)
        except GatewayError as exc:
            session.close(close_code_for(exc), exc.message)
        except BaseException:
            hub.remove(session)
            raise
    return session


def install(app: web.Application) -> None:
    """Route /v1/ws; its dispatcher (under DISPATCHER_KEY) is set at start-up."""
    app.router.add_get(WEBSOCKET_PATH, websocket)
