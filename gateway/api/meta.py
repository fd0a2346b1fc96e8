"""REST: health, readiness and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from aiohttp import web

import gateway
from gateway.api.routing import ROUTES, Call, Route
from gateway.config import Settings
from gateway.http import json_response
from gateway.schema import JSON_VALUE, Bool, Obj, Str

ERROR = Obj(
    {"message": Str(max_length=None), "request_id": Str(max_length=64)},
    required=["message", "request_id"],
    name="Error",
)

_STATUS_TEXT = {
    200: "OK",
    201: "Created",
    204: "No content",
    400: "Malformed request (bad JSON, JSON nested too deep, unknown query parameter)",
    401: "Missing, invalid, expired or revoked token",
    403: "The token lacks the permission or scope",
    404: "Not found",
    409: "Conflict",
    413: "Body too large",
    415: "Content-Type is not application/json",
    422: "Validation failed (unknown, missing or wrongly typed field)",
    429: "Too many requests; see Retry-After",
    503: "Not ready",
}


@ROUTES.route(
    "GET",
    "/healthz",
    summary="The process is alive",
    tag="meta",
    auth=False,
    responses={200: Obj({"status": Str()})},
)
async def healthz(call: Call) -> web.Response:
    return json_response({"status": "ok"})


@ROUTES.route(
    "GET",
    "/readyz",
    summary="The database takes writes (probed at most twice a second) and the bus is connected",
    tag="meta",
    auth=False,
    responses={200: Obj({"database": Bool(), "bus": Bool(), "instance": Str()}), 503: None},
)
async def readyz(call: Call) -> web.Response:
    ctx = call.ctx
    database = await ctx.health.ready()
    bus = ctx.bus.healthy
    status = 200 if database and bus else 503
    return json_response(
        {"database": database, "bus": bus, "instance": ctx.settings.instance_id}, status
    )


def _operation(route: Route) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    codes = dict(route.responses)
    codes.setdefault(400, None)  # every route refuses an unknown query parameter
    if route.body is not None or route.params or route.query:
        codes.setdefault(422, None)
    if route.body is not None:
        codes.setdefault(413, None)
        codes.setdefault(415, None)
    if route.auth:
        codes.setdefault(401, None)
        if route.permission is not None:
            codes.setdefault(403, None)
    for code in sorted(codes):
        schema = codes[code]
        entry: dict[str, Any] = {"description": _STATUS_TEXT.get(code, str(code))}
        if code >= 400:
            entry["content"] = {
                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
            }
        elif schema is not None:
            entry["content"] = {"application/json": {"schema": schema.json_schema()}}
        responses[str(code)] = entry
    operation: dict[str, Any] = {
        "summary": route.summary,
        "tags": [route.tag],
        "operationId": route.handler.__name__,
        "responses": responses,
    }
    if route.permission is not None:
        operation["description"] = f"Needs the {route.permission.name} action."
    if route.auth:
        operation["security"] = [{"bearer": []}]
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": schema.json_schema()}
        for name, schema in route.params.items()
    ] + [
        {"name": name, "in": "query", "required": False, "schema": schema.json_schema()}
        for name, schema in route.query.items()
    ]
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": route.body.json_schema()}},
        }
    return operation


def _configured_maxima(paths: dict[str, dict[str, Any]], settings: Settings) -> None:
    """Maxima that the configuration sets rather than the declarations: a minted token lives
    at most GATEWAY_MINT_MAX_TTL."""
    mint = paths["/v1/auth/token/create"]["post"]["requestBody"]["content"]["application/json"]
    mint["schema"]["properties"]["expires_in"]["maximum"] = int(settings.mint_max_ttl)


def openapi_document(settings: Settings | None = None) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES.routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    if settings is not None:
        _configured_maxima(paths, settings)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "gateway",
            "version": gateway.__version__,
            "description": "IoT authentication and real-time gateway. Errors are "
            "{message, request_id}; every response carries X-Request-ID. The WebSocket "
            "protocol at /v1/ws is described in the README.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {"Error": ERROR.json_schema(), "JsonValue": JSON_VALUE},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


@ROUTES.route(
    "GET",
    "/v1/openapi.json",
    summary="This document",
    tag="meta",
    auth=False,
    responses={200: Obj({}, additional=True)},
)
async def openapi(call: Call) -> web.Response:
    return json_response(openapi_document(call.ctx.settings))
