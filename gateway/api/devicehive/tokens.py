"""DeviceHive dialect: token, token/refresh, token/create, info and info/config/cluster."""

from __future__ import annotations

import time

from aiohttp import web

from gateway import API_VERSION
from gateway.api.devicehive.routing import PREFIX, route
from gateway.api.routing import Call
from gateway.auth.devicehive import TOKEN_PAYLOAD, mint_request
from gateway.clock import iso
from gateway.devices.catalog import require
from gateway.http import client_address, json_response
from gateway.schema import Obj, Str
from gateway.types import Action

LOGIN = Obj(
    {"login": Str(min_length=1, max_length=320), "password": Str(min_length=1, max_length=1024)},
    required=["login", "password"],
)
REFRESH = Obj({"refreshToken": Str(min_length=1, max_length=8192)}, required=["refreshToken"])


@route("POST", "/token", body=LOGIN, auth=False)
async def dialect_token(call: Call) -> web.Response:
    address = client_address(call.request, call.ctx.settings.trusted_proxies)
    pair = await call.ctx.auth.login(call.body["login"], call.body["password"], address)
    return json_response(
        {"accessToken": pair.access.token, "refreshToken": pair.refresh.token}, 201
    )


@route("POST", "/token/refresh", body=REFRESH, auth=False)
async def dialect_token_refresh(call: Call) -> web.Response:
    access = await call.ctx.auth.access_from_refresh(call.body["refreshToken"])
    return json_response({"accessToken": access.token}, 201)


@route("POST", "/token/create", body=TOKEN_PAYLOAD)
async def dialect_token_create(call: Call) -> web.Response:
    require(call.principal, Action.ManageToken)
    pair = await call.ctx.auth.mint(call.principal, mint_request(call.body))
    return json_response(
        {"accessToken": pair.access.token, "refreshToken": pair.refresh.token}, 201
    )


@route("GET", "/info", auth=False)
async def dialect_info(call: Call) -> web.Response:
    settings = call.ctx.settings
    base = (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")
    return json_response(
        {
            "apiVersion": API_VERSION,
            "serverTimestamp": iso(time.time()),
            "restServerUrl": base + PREFIX,
            "webSocketServerUrl": base.replace("http", "ws", 1) + "/v1/ws",
        }
    )


@route("GET", "/info/config/cluster")
async def dialect_cluster_info(call: Call) -> web.Response:
    return json_response(
        {
            "instanceId": call.ctx.settings.instance_id,
            "bus": "redis" if call.ctx.bus.shared else "in-process",
        }
    )
