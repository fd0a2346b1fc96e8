"""Routes of the DeviceHive dialect: DeviceHive's paths, lenient bodies, DeviceHive's error body.

DeviceHive's own client sends JSON bodies without a Content-Type and booleans as ``True``; its
errors are read from ``{"error": <status>, "message": ...}`` (the request id is added, as on
every other error of the gateway).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.api.routing import REST_KEY, Call, bearer_token, read_json
from gateway.auth.plugins import refuse_plugin
from gateway.errors import (
    BadRequest,
    GatewayError,
    TooManyRequests,
    Unprocessable,
)
from gateway.http import REQUEST_ID_KEY, json_response
from gateway.schema import Obj, Schema

PREFIX = "/api/rest"

Handler = Callable[[Call], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class DialectRoute:
    method: str
    path: str
    handler: Handler
    params: Mapping[str, Schema] = field(default_factory=dict)
    query: Mapping[str, Schema] = field(default_factory=dict)
    body: Obj | None = None
    auth: bool = True


DIALECT: list[DialectRoute] = []


def route(
    method: str,
    path: str,
    *,
    params: Mapping[str, Schema] | None = None,
    query: Mapping[str, Schema] | None = None,
    body: Obj | None = None,
    auth: bool = True,
) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        DIALECT.append(
            DialectRoute(method, PREFIX + path, handler, params or {}, query or {}, body, auth)
        )
        return handler

    return register


def install(app: web.Application) -> None:
    for entry in DIALECT:
        app.router.add_route(entry.method, entry.path, _endpoint(entry))


def dialect_error(status: int, message: str, request_id: str) -> web.Response:
    return json_response({"error": status, "message": message, "request_id": request_id}, status)


def _endpoint(entry: DialectRoute) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        request_id = request[REQUEST_ID_KEY]
        try:
            ctx = request.app[REST_KEY]
            principal = ctx.auth.authenticate(bearer_token(request)) if entry.auth else None
            if principal is not None:
                refuse_plugin(principal, f"{entry.method} {entry.path}")
            params = {
                name: schema.parse_text(request.match_info[name], name)
                for name, schema in entry.params.items()
            }
            unknown = sorted(set(request.query) - set(entry.query))
            if unknown:
                raise BadRequest(f"unknown query parameter: {', '.join(unknown)}")
            query = {
                name: schema.parse_text(request.query[name], name)
                for name, schema in entry.query.items()
                if name in request.query and request.query[name] != ""
            }
            body = (
                await read_json(request, entry.body, required=False)
                if entry.body is not None
                else {}
            )
            call = Call(request, ctx, request_id, body, params, query, principal)
            return await entry.handler(call)
        except TooManyRequests as exc:
            response = dialect_error(exc.status, exc.message, request_id)
            response.headers["Retry-After"] = str(exc.retry_after)
            return response
        except GatewayError as exc:
            return dialect_error(exc.status, exc.message, request_id)

    return endpoint


def no_content() -> web.Response:
    return web.Response(status=204)


class Flag(Schema):
    """A query flag as DeviceHive's client writes it (``True``) or as people do (``true``)."""

    def parse_text(self, text: str, path: str) -> Any:
        if text in ("true", "True", "1"):
            return True
        if text in ("false", "False", "0"):
            return False
        raise Unprocessable(f"{path}: must be true or false")

    def _json_schema(self) -> dict[str, Any]:
        return {"type": "boolean"}
