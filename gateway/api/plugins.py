"""REST: plugins (ManagePlugin) and the seed's plugin token endpoints."""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from gateway.api.auth import TOKEN_PAIR
from gateway.api.routing import ROUTES, Call, receipt_headers
from gateway.auth.tokens import topic_claims
from gateway.clock import iso
from gateway.errors import Unauthorized
from gateway.http import json_response
from gateway.listing import MAX_SKIP, MAX_TAKE
from gateway.schema import DESCRIPTION, Array, Bool, Int, Obj, Str
from gateway.types import Action, Topic

IDS = Array(Int(minimum=1), min_items=1, max_items=1000)
TOPIC = Obj(
    {
        "networkIds": IDS,
        "deviceTypeIds": IDS,
        "names": Array(Str(min_length=1, max_length=256), min_items=1, max_items=256),
        "notifications": Bool(),
        "commands": Bool(),
    },
    description="What the plugin may subscribe to: left out, a filter does not narrow; "
    "notifications defaults to true, commands to false.",
)
NEW_PLUGIN = Obj(
    {
        "name": Str(min_length=1, max_length=200),
        "description": DESCRIPTION,
        "topic": TOPIC,
    },
    required=["name", "topic"],
)
TOPIC_JSON = Obj(
    {
        "networkIds": Array(Int(), nullable=True),
        "deviceTypeIds": Array(Int(), nullable=True),
        "names": Array(Str(), nullable=True),
        "notifications": Bool(),
        "commands": Bool(),
    },
    required=["networkIds", "deviceTypeIds", "names", "notifications", "commands"],
)
PLUGIN = Obj(
    {
        "id": Int(),
        "name": Str(),
        "description": DESCRIPTION,
        "userId": Int(),
        "topic": TOPIC_JSON,
        "createdAt": Str(format="date-time"),
    },
    required=["id", "name", "description", "userId", "topic", "createdAt"],
)
CREATED = Obj(
    {"plugin": PLUGIN, **TOKEN_PAIR.properties},
    required=["plugin", *TOKEN_PAIR.required],
)
PLUGIN_PAYLOAD = Obj(
    {
        "userId": Int(),
        "pluginId": Int(),
        "topic": TOPIC_JSON,
        "actions": Array(Str()),
        "networkIds": Array(Int(), nullable=True),
        "expiration": Str(format="date-time"),
    },
    required=["userId", "pluginId", "topic", "actions", "networkIds", "expiration"],
)


def _topic(body: dict[str, Any]) -> Topic:
    def listed(name: str) -> frozenset[Any] | None:
        value = body.get(name)
        return None if value is None else frozenset(value)

    return Topic(
        network_ids=listed("networkIds"),
        device_type_ids=listed("deviceTypeIds"),
        names=listed("names"),
        notifications=bool(body.get("notifications", True)),
        commands=bool(body.get("commands", False)),
    )


@ROUTES.route(
    "POST",
    "/v1/auth/token/plugin/create",
    summary="Register a plugin: a token pair bound to a topic, with the caller's rights",
    tag="plugins",
    body=NEW_PLUGIN,
    permission=Action.ManagePlugin,
    responses={201: CREATED, 409: None, 422: None},
)
async def create_plugin(call: Call) -> web.Response:
    plugin, pair = await call.ctx.dh.plugins.create(
        call.principal,
        call.body["name"],
        call.body.get("description"),
        _topic(call.body["topic"]),
    )
    return json_response({"plugin": plugin.to_json(), **pair.to_json()}, status=201)


@ROUTES.route(
    "GET",
    "/v1/auth/token/plugin/authenticate",
    summary="Check a plugin's access token and read its plugin payload",
    tag="plugins",
    query={"token": Str(min_length=1, max_length=4096)},
    auth=False,
    responses={200: PLUGIN_PAYLOAD, 401: None, 422: None},
)
async def authenticate_plugin(call: Call) -> web.Response:
    if "token" not in call.query:
        raise Unauthorized("Missing token (expected: ?token=<a plugin's access token>)")
    principal = call.ctx.dh.plugins.authenticate(call.query["token"])
    assert principal.scope.topic is not None and principal.scope.plugin_id is not None
    networks = principal.scope.network_ids
    return json_response(
        {
            "userId": principal.user_id,
            "pluginId": principal.scope.plugin_id,
            "topic": topic_claims(principal.scope.topic),
            "actions": sorted(action.name for action in principal.actions),
            "networkIds": None if networks is None else sorted(networks),
            "expiration": iso(math.floor(principal.expires_at)),
        }
    )


@ROUTES.route(
    "GET",
    "/v1/plugins",
    summary="The registered plugins",
    tag="plugins",
    query={"take": Int(minimum=1, maximum=MAX_TAKE), "skip": Int(minimum=0, maximum=MAX_SKIP)},
    permission=Action.ManagePlugin,
    responses={200: Obj({"plugins": Array(PLUGIN)}, required=["plugins"])},
)
async def list_plugins(call: Call) -> web.Response:
    found = await call.ctx.dh.plugins.page(
        call.principal, call.query.get("take", MAX_TAKE), call.query.get("skip", 0)
    )
    return json_response({"plugins": [plugin.to_json() for plugin in found]})


@ROUTES.route(
    "DELETE",
    "/v1/plugins/{id}",
    summary="Delete a plugin: its tokens stop working and its sockets close (4003)",
    tag="plugins",
    params={"id": Int(minimum=1)},
    permission=Action.ManagePlugin,
    responses={204: None, 404: None},
)
async def delete_plugin(call: Call) -> web.Response:
    receipt = await call.ctx.dh.plugins.delete(call.principal, call.params["id"])
    return web.Response(status=204, headers=receipt_headers(receipt))
