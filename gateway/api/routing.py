"""Route declarations, the per-request Call, and the middleware that makes every error JSON.

A route is declared once with its body, parameters, permission and responses; the same
declaration validates requests, checks rights and writes the OpenAPI document.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from gateway.api.schema import Obj, Schema
from gateway.auth.permissions import Action, Principal
from gateway.auth.revoker import Receipt
from gateway.errors import (
    BadRequest,
    Forbidden,
    GatewayError,
    PayloadTooLarge,
    TooManyRequests,
    Unauthorized,
    UnsupportedMediaType,
)

if TYPE_CHECKING:
    from gateway.services import Services

log = logging.getLogger("gateway.api")

REQUEST_ID = "X-Request-ID"
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
SERVICES_KEY: web.AppKey[Services] = web.AppKey("services")
REQUEST_ID_KEY: web.RequestKey[str] = web.RequestKey("request_id", str)


@dataclass(slots=True)
class Call:
    """What a handler gets: the request, validated input and the caller."""

    request: web.Request
    services: Services
    request_id: str
    body: dict[str, Any]
    params: dict[str, Any]
    query: dict[str, Any]
    principal_or_none: Principal | None

    @property
    def principal(self) -> Principal:
        assert self.principal_or_none is not None, "route declared without auth"
        return self.principal_or_none


Handler = Callable[[Call], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    body: Obj | None = None
    params: Mapping[str, Schema] = field(default_factory=dict)
    query: Mapping[str, Schema] = field(default_factory=dict)
    auth: bool = True
    permission: Action | None = None
    responses: Mapping[int, Schema | None] = field(default_factory=dict)


class RouteTable:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tag: str,
        body: Obj | None = None,
        params: Mapping[str, Schema] | None = None,
        query: Mapping[str, Schema] | None = None,
        auth: bool = True,
        permission: Action | None = None,
        responses: Mapping[int, Schema | None] | None = None,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.append(
                Route(
                    method=method,
                    path=path,
                    handler=handler,
                    summary=summary,
                    tag=tag,
                    body=body,
                    params=params or {},
                    query=query or {},
                    auth=auth,
                    permission=permission,
                    responses=responses or {},
                )
            )
            return handler

        return register

    def install(self, app: web.Application) -> None:
        for route in self.routes:
            app.router.add_route(route.method, route.path, _endpoint(route))


ROUTES = RouteTable()


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json", headers=headers
    )


def receipt_headers(receipt: Receipt | None) -> dict[str, str]:
    """A revocation's receipt on responses whose body is fixed (204s, user objects)."""
    if receipt is None:
        return {}
    return {
        "X-Sessions-Closed": str(receipt.sessions_closed),
        "X-Sessions-Closed-By": ", ".join(
            f"{name}={count}" for name, count in sorted(receipt.instances.items())
        ),
    }


def bearer_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise Unauthorized("Missing Authorization header (expected: Bearer <access token>)")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Malformed Authorization header (expected: Bearer <access token>)")
    return token.strip()


async def _read_body(request: web.Request, schema: Obj) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise UnsupportedMediaType("Content-Type must be application/json")
    max_size = request.app[SERVICES_KEY].settings.max_body_bytes
    if request.content_length is not None and request.content_length > max_size:
        raise PayloadTooLarge(f"Request body must be at most {max_size} bytes")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"Request body must be at most {max_size} bytes") from None
    if not raw.strip():
        raise BadRequest("Request body is empty (expected a JSON object)")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"Malformed JSON: {exc}") from None
    checked: dict[str, Any] = schema.check(data, "")
    return checked


def _endpoint(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        services = request.app[SERVICES_KEY]
        principal = None
        if route.auth:
            principal = services.auth.authenticate(bearer_token(request))
            if route.permission is not None and not principal.may(route.permission):
                raise Forbidden(f"Missing permission: {route.permission.name}")
        params = {
            name: schema.parse_text(request.match_info[name], name)
            for name, schema in route.params.items()
        }
        unknown = sorted(set(request.query) - set(route.query))
        if unknown:
            raise BadRequest(f"unknown query parameter: {', '.join(unknown)}")
        query = {
            name: schema.parse_text(request.query[name], name)
            for name, schema in route.query.items()
            if name in request.query
        }
        body = await _read_body(request, route.body) if route.body is not None else {}
        call = Call(
            request=request,
            services=services,
            request_id=request[REQUEST_ID_KEY],
            body=body,
            params=params,
            query=query,
            principal_or_none=principal,
        )
        return await route.handler(call)

    return endpoint


def _error(
    status: int, message: str, request_id: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    return json_response({"message": message, "request_id": request_id}, status, headers)


def request_id_of(request: web.Request) -> str:
    """The client's X-Request-ID when it is sane, else a fresh one."""
    incoming = request.headers.get(REQUEST_ID, "")
    return incoming if _CLIENT_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex


def error_response(status: int, message: str, request_id: str) -> web.Response:
    response = _error(status, message, request_id)
    response.headers[REQUEST_ID] = request_id
    return response


WEBSOCKET_PATH = "/v1/ws"

Endpoint = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
def error_middleware(request: web.Request, handler: Endpoint) -> Awaitable[web.StreamResponse]:
    """REST requests go through ``_answer``. A WebSocket is handed its handler's own coroutine:
    a middleware that awaited it would keep a frame alive for the life of every socket (the
    WebSocket endpoint sets its request id and formats its errors itself)."""
    if request.path == WEBSOCKET_PATH:
        return handler(request)
    return _answer(request, handler)


async def _answer(request: web.Request, handler: Endpoint) -> web.StreamResponse:
    """Request ids on every response; every failure as ``{message, request_id}``; never a 500
    with details."""
    request_id = request_id_of(request)
    request[REQUEST_ID_KEY] = request_id
    try:
        response = await handler(request)
    except TooManyRequests as exc:
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
    except Exception:
        log.exception(
            "unhandled error in %s %s (request %s)", request.method, request.path, request_id
        )
        response = _error(500, "Internal server error", request_id)
    if not response.prepared:
        response.headers[REQUEST_ID] = request_id
    return response
