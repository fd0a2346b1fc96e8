"""GET /v1/ws: the upgrade, optional Bearer authentication, and the read loop."""

from __future__ import annotations

import logging

from aiohttp import WSMsgType, web

from gateway.api.clientaddr import client_address
from gateway.api.routing import (
    REQUEST_ID,
    SERVICES_KEY,
    error_response,
    request_id_of,
)
from gateway.errors import GatewayError
from gateway.realtime.actions import Dispatcher, authenticate_session
from gateway.realtime.protocol import CloseCode
from gateway.realtime.session import Session

log = logging.getLogger(__name__)
DISPATCHER_KEY: web.AppKey[Dispatcher] = web.AppKey("dispatcher", Dispatcher)
"""One dispatcher serves every socket (it holds no per-session state)."""

_CLOSE_FOR = {"Token expired": CloseCode.TOKEN_EXPIRED, "Token revoked": CloseCode.TOKEN_REVOKED}


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


async def websocket(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES_KEY]
    settings = services.settings
    hub = services.hub
    request_id = request_id_of(request)
    if hub.shutting_down:
        return error_response(503, "Server shutting down", request_id)
    ws = web.WebSocketResponse(
        heartbeat=settings.ws_heartbeat,
        max_msg_size=settings.ws_max_message_bytes,
        compress=False,
    )
    ws.headers[REQUEST_ID] = request_id
    try:
        await ws.prepare(request)
    except web.HTTPException as exc:
        return error_response(exc.status, "Expected a WebSocket upgrade request", request_id)
    session = Session(ws, hub, client_address(request, settings.trusted_proxies))
    hub.add(session)
    dispatcher = request.app[DISPATCHER_KEY]
    try:
        token = _bearer(request)
        if token is not None:
            try:
                await authenticate_session(services, session, token)
            except GatewayError as exc:
                session.close(_CLOSE_FOR.get(exc.message, CloseCode.INVALID_TOKEN), exc.message)
        async for message in ws:
            if message.type is WSMsgType.TEXT or message.type is WSMsgType.BINARY:
                await dispatcher.handle(session, message.data)
            elif message.type is WSMsgType.ERROR:
                break
    finally:
        hub.remove(session)
    return ws
