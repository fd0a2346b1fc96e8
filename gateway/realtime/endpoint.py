"""GET /v1/ws: the upgrade, optional Bearer authentication, and the read loop."""

from __future__ import annotations

import logging
import sys

from aiohttp import WSMsgType, web

from gateway.errors import GatewayError
from gateway.http import REQUEST_ID, client_address, error_response, request_id_of
from gateway.logs import LOG_REQUEST_ID, LOG_SESSION_ID
from gateway.realtime import actions  # noqa: F401 - registers every action
from gateway.realtime.actions.auth import authenticate_session
from gateway.realtime.dispatcher import DISPATCHER_KEY
from gateway.realtime.session import Session
from gateway.types import close_code_for

log = logging.getLogger(__name__)

WEBSOCKET_PATH = "/v1/ws"


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


async def websocket(request: web.Request) -> web.StreamResponse:
    dispatcher = request.app[DISPATCHER_KEY]
    ctx = dispatcher.ctx
    settings = ctx.settings
    hub = ctx.hub
    request_id = request_id_of(request)
    LOG_REQUEST_ID.set(request_id)
    if hub.shutting_down:
        return error_response(503, "Server shutting down", request_id)
    ws = web.WebSocketResponse(
        heartbeat=settings.ws_heartbeat,
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
    LOG_SESSION_ID.set(session.id)
    hub.add(session)
    try:
        token = _bearer(request)
        if token is not None:
            try:
                await authenticate_session(ctx, session, token)
            except GatewayError as exc:
                session.close(close_code_for(exc), exc.message)
        async for message in ws:
            if message.type is WSMsgType.TEXT or message.type is WSMsgType.BINARY:
                await dispatcher.handle(session, message.data)
            elif message.type is WSMsgType.ERROR:
                break
    finally:
        hub.remove(session)
    return ws


def install(app: web.Application) -> None:
    """Route /v1/ws; its dispatcher (under DISPATCHER_KEY) is set at start-up."""
    app.router.add_get(WEBSOCKET_PATH, websocket)
