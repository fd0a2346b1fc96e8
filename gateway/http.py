"""What REST and WebSocket share over HTTP: request ids, the client's address, JSON error bodies,
and the browser-origin policy (CORS for REST, the Origin check of WebSocket upgrades).

Both edges build on this module and neither imports the other: the error middleware formats
every REST failure as ``{message, request_id}``, and passes through the paths whose handler
formats its own (the WebSocket endpoint), which the app's wiring names.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.errors import GatewayError, TooManyRequests, Unavailable
from gateway.logs import LOG_REQUEST_ID

log = logging.getLogger("gateway.api")

REQUEST_ID = "X-Request-ID"
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
REQUEST_ID_KEY: web.RequestKey[str] = web.RequestKey("request_id", str)

Endpoint = Callable[[web.Request], Awaitable[web.StreamResponse]]


# -- request ids and JSON bodies -----------------------------------------------------------


def request_id_of(request: web.Request) -> str:
    """The client's X-Request-ID when it is sane, else a fresh one."""
    incoming = request.headers.get(REQUEST_ID, "")
    return incoming if _CLIENT_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json", headers=headers
    )


def _error(
    status: int, message: str, request_id: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    return json_response({"message": message, "request_id": request_id}, status, headers)


def error_response(status: int, message: str, request_id: str) -> web.Response:
    """A ``{message, request_id}`` error that carries its X-Request-ID header already."""
    response = _error(status, message, request_id)
    response.headers[REQUEST_ID] = request_id
    return response


DATABASE_UNAVAILABLE = "Database unavailable; retry later"

RETRY_AFTER = 1
"""Seconds a client is told to wait (Retry-After) while a dependency is unreachable."""

MAX_QUERY_TEXT = 7 * 1024
"""The longest text a query parameter declares: aiohttp's parser reads request lines of at most
8190 bytes (method, path, query and protocol together) and answers a longer one with its own
text/plain 400, so a longer value could never arrive."""

Outage = Callable[[BaseException], bool]
"""Told an unexpected error; True when it means a dependency is down (answered 503 and logged
once per outage by whoever tracks it), False when it is a bug (500, logged with traceback)."""


def _never(exc: BaseException) -> bool:
    return False


def error_middleware(passthrough: Collection[str] = (), outage: Outage = _never) -> Middleware:
    """Request ids on every response; every failure as ``{message, request_id}``; never a 500
    with details; ``503`` with ``Retry-After`` while the database is down (``outage``).

    A request to a ``passthrough`` path is handed its handler's own coroutine: a middleware that
    awaited it would keep a frame alive for the life of every WebSocket (whose endpoint sets its
    request id and formats its errors itself)."""
    paths = frozenset(passthrough)

    @web.middleware
    def middleware(request: web.Request, handler: Endpoint) -> Awaitable[web.StreamResponse]:
        if request.path in paths:
            return handler(request)
        return _answer(request, handler, outage)

    return middleware


async def _answer(request: web.Request, handler: Endpoint, outage: Outage) -> web.StreamResponse:
    request_id = request_id_of(request)
    request[REQUEST_ID_KEY] = request_id
    LOG_REQUEST_ID.set(request_id)
    try:
        response = await handler(request)
    except (TooManyRequests, Unavailable) as exc:
        response = _error(
            exc.status, exc.message, request_id, {"Retry-After": str(exc.retry_after)}
        )
    except GatewayError as exc:
        response = _error(exc.status, exc.message, request_id)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = {404: "Not found", 405: f"Method {request.method} not allowed"}.get(
            exc.status, exc.reason
        )
        response = _error(exc.status, message, request_id)
        if exc.status == 405 and "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
    except Exception as exc:
        if outage(exc):
            response = _error(
                503, DATABASE_UNAVAILABLE, request_id, {"Retry-After": str(RETRY_AFTER)}
            )
        else:
            log.exception(
                "unhandled error in %s %s (request %s)", request.method, request.path, request_id
            )
            response = _error(500, "Internal server error", request_id)
    if not response.prepared:
        response.headers[REQUEST_ID] = request_id
    return response


# -- the client's address ------------------------------------------------------------------
# Behind a load balancer every request comes from the balancer; its ``X-Forwarded-For`` names
# the real client. The header is believed only when the peer is a configured trusted proxy, and
# read from the right, skipping trusted hops, so a client cannot pick the address it is
# throttled by.

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _trusted(address: str, proxies: Sequence[IPNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(request: web.Request, proxies: Sequence[IPNetwork]) -> str:
    peer = request.remote or "unknown"
    if not proxies or not _trusted(peer, proxies):
        return peer
    hops = [
        hop.strip()
        for header in request.headers.getall("X-Forwarded-For", [])
        for hop in header.split(",")
        if hop.strip()
    ]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop
    return hops[0] if hops else peer


# -- the browser-origin policy -------------------------------------------------------------
# Only browsers send ``Origin``; devices and command-line clients do not, so a request without
# it is never refused here. With no origins configured the middleware is not installed at all.

ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type, X-Request-ID"
EXPOSE_HEADERS = "X-Request-ID, Retry-After, X-Sessions-Closed, X-Sessions-Closed-By"
MAX_AGE = "600"


class OriginPolicy:
    def __init__(self, origins: Collection[str]) -> None:
        self.any = "*" in origins
        self.origins = frozenset(origin for origin in origins if origin != "*")

    def allows(self, origin: str) -> bool:
        return self.any or origin.rstrip("/").lower() in self.origins

    def middleware(self, websocket: Collection[str] = ()) -> Middleware:
        """CORS on every path but ``websocket``, whose upgrades get the Origin check instead."""
        upgrades = frozenset(websocket)

        @web.middleware
        def middleware(request: web.Request, handler: Endpoint) -> Awaitable[web.StreamResponse]:
            origin = request.headers.get("Origin")
            if origin is None:
                return handler(request)
            if request.path in upgrades:
                # Handed on unawaited, like the error middleware does (no frame per socket).
                if self.allows(origin):
                    return handler(request)
                return _refuse(request, "WebSocket upgrade from a disallowed Origin")
            if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
                return self._preflight(request, origin)
            return self._answer(request, handler, origin)

        return middleware

    async def _preflight(self, request: web.Request, origin: str) -> web.StreamResponse:
        if not self.allows(origin):
            return await _refuse(request, "Origin not allowed")
        response = web.Response(status=204)
        response.headers.update(
            {
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": ALLOW_METHODS,
                "Access-Control-Allow-Headers": ALLOW_HEADERS,
                "Access-Control-Max-Age": MAX_AGE,
                "Vary": "Origin",
                REQUEST_ID: request_id_of(request),
            }
        )
        return response

    async def _answer(
        self, request: web.Request, handler: Endpoint, origin: str
    ) -> web.StreamResponse:
        response = await handler(request)
        if self.allows(origin) and not response.prepared:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
            response.headers["Vary"] = "Origin"
        return response


async def _refuse(request: web.Request, message: str) -> web.StreamResponse:
    return error_response(403, message, request_id_of(request))
