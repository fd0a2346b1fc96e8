"""REST route declarations and the per-request Call: what a handler gets and may use.

A route is declared once with its body, parameters, permission and responses; the same
declaration validates requests, checks rights and writes the OpenAPI document.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from aiohttp import web

from gateway.auth.accounts import AccountService
from gateway.auth.login import AuthService
from gateway.auth.plugins import PluginService, refuse_plugin
from gateway.auth.revoker import Receipt
from gateway.auth.tokens import KeySet
from gateway.bus.base import Bus
from gateway.config import Settings
from gateway.devices.catalog import CatalogService
from gateway.devices.devices import Devices
from gateway.devices.devicetypes import DeviceTypeService
from gateway.devices.history import HistoryService
from gateway.devices.messages import Messages
from gateway.devices.networks import Networks
from gateway.errors import (
    BadRequest,
    Forbidden,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
)
from gateway.http import REQUEST_ID_KEY
from gateway.limits import loads
from gateway.schema import Obj, Schema
from gateway.store.db import Pool
from gateway.store.health import DatabaseHealth
from gateway.store.users import UserStore
from gateway.types import Action, Principal


class LiveSessions(Protocol):
    """This instance's live WebSocket sessions, as the admin REST view sees them."""

    def describe_all(self) -> list[dict[str, Any]]: ...

    def terminate(self, session_id: str) -> bool: ...


@dataclass(slots=True)
class DeviceHiveRest:
    """The DeviceHive surface's use cases, as its REST routes and the dialect use them."""

    messages: Messages
    device_types: DeviceTypeService
    history: HistoryService
    catalog: CatalogService
    plugins: PluginService


@dataclass(slots=True)
class Rest:
    """What REST handlers may use: the use cases and the few parts they read directly."""

    settings: Settings
    pool: Pool
    health: DatabaseHealth
    bus: Bus
    keys: KeySet
    users: UserStore
    auth: AuthService
    accounts: AccountService
    networks: Networks
    devices: Devices
    sessions: LiveSessions
    dh: DeviceHiveRest


REST_KEY: web.AppKey[Rest] = web.AppKey("rest", Rest)


@dataclass(slots=True)
class Call:
    """What a handler gets: the request, validated input, the caller, and what it may use."""

    request: web.Request
    ctx: Rest
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
    return await read_json(request, schema, required=True)


async def read_json(request: web.Request, schema: Obj, *, required: bool) -> dict[str, Any]:
    """The body checked against ``schema``; an empty body is refused, or read as ``{}``
    where the dialect allows it (DeviceHive's clients send none on some calls)."""
    max_size = request.app[REST_KEY].settings.max_body_bytes
    if request.content_length is not None and request.content_length > max_size:
        raise PayloadTooLarge(f"Request body must be at most {max_size} bytes")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"Request body must be at most {max_size} bytes") from None
    if not raw.strip() and required:
        raise BadRequest("Request body is empty (expected a JSON object)")
    try:
        data = loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"Malformed JSON: {exc}") from None
    checked: dict[str, Any] = schema.check(data, "")
    return checked


def _endpoint(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        ctx = request.app[REST_KEY]
        principal = None
        if route.auth:
            principal = ctx.auth.authenticate(bearer_token(request))
            refuse_plugin(principal, f"{route.method} {route.path}")
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
            ctx=ctx,
            request_id=request[REQUEST_ID_KEY],
            body=body,
            params=params,
            query=query,
            principal_or_none=principal,
        )
        return await route.handler(call)

    return endpoint
