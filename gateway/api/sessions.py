"""REST: the admin view of this instance's live WebSocket sessions."""

from __future__ import annotations

from aiohttp import web

from gateway.api.routing import ROUTES, Call
from gateway.errors import NotFound
from gateway.http import json_response
from gateway.schema import AnyJson, Array, Obj, Str
from gateway.types import Action

SESSION = Obj(
    {
        "id": Str(),
        "user_id": AnyJson(),
        "jti": AnyJson(),
        "networkIds": Array(AnyJson()),
        "deviceIds": Array(AnyJson()),
        "remote": AnyJson(),
        "connected_at": AnyJson(description="seconds since the epoch"),
        "instance": Str(),
        "subscriptions": Array(Obj({}, additional=True)),
    }
)


@ROUTES.route(
    "GET",
    "/v1/sessions",
    summary="This instance's live WebSocket sessions",
    tag="sessions",
    permission=Action.ManageUser,
    responses={200: Obj({"instance": Str(), "sessions": Array(SESSION)})},
)
async def list_sessions(call: Call) -> web.Response:
    return json_response(
        {"instance": call.ctx.settings.instance_id, "sessions": call.ctx.sessions.describe_all()}
    )


@ROUTES.route(
    "DELETE",
    "/v1/sessions/{id}",
    summary="Close one live session on this instance (close code 4004)",
    tag="sessions",
    params={"id": Str(min_length=1, max_length=64)},
    permission=Action.ManageUser,
    responses={204: None, 404: None},
)
async def delete_session(call: Call) -> web.Response:
    if not call.ctx.sessions.terminate(call.params["id"]):
        raise NotFound("Session not found on this instance")
    return web.Response(status=204)
