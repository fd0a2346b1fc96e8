"""WebSocket actions over users, networks, device types, tokens, configuration and the cluster,
in DeviceHive's request and reply shapes; the rules are the use cases'."""

from __future__ import annotations

from typing import Any

from gateway.auth.devicehive import TOKEN_PAYLOAD, mint_request
from gateway.devices.catalog import require
from gateway.devices.devicehive import network_json, user_filters, user_json
from gateway.listing import by_name, filters, like_pattern, paging
from gateway.realtime.dispatcher import Context, action, principal_of
from gateway.realtime.session import Session
from gateway.schema import Int, Str
from gateway.types import Action

ID = Int(minimum=1)


@action("user/getCurrent", {})
async def user_get_current(
    ctx: Context, session: Session, request: dict[str, Any]
) -> dict[str, Any]:
    user, access = await ctx.dh.catalog.current_user(principal_of(session))
    return {"current": user_json(user, access)}


@action("user/get", {"userId": ID}, ("userId",))
async def user_get(ctx: Context, session: Session, request: dict[str, Any]) -> dict[str, Any]:
    user, access = await ctx.dh.catalog.user(principal_of(session), request["userId"])
    return {"user": user_json(user, access)}


USER_LISTING = {
    "login": Str(min_length=1, max_length=320),
    "loginPattern": like_pattern(320),
    "role": Int(minimum=0, maximum=1),
    "status": Int(minimum=0, maximum=2),
    **paging(["id", "login"]),
}


@action("user/list", USER_LISTING)
async def user_list(ctx: Context, session: Session, request: dict[str, Any]) -> dict[str, Any]:
    found = await ctx.dh.catalog.user_list(
        principal_of(session), **{**filters(request), **user_filters(request)}
    )
    return {"users": [user_json(user, access) for user, access in found]}


@action("network/list", by_name(["id", "name"]))
async def network_list(ctx: Context, session: Session, request: dict[str, Any]) -> dict[str, Any]:
    found = await ctx.dh.catalog.network_list(principal_of(session), **filters(request))
    return {"networks": [network.to_json() for network in found]}


@action("network/get", {"networkId": ID}, ("networkId",))
async def network_get(ctx: Context, session: Session, request: dict[str, Any]) -> dict[str, Any]:
    network, devices = await ctx.dh.catalog.network(principal_of(session), request["networkId"])
    return {"network": network_json(network, devices)}


@action("devicetype/list", by_name(["id", "name"]))
async def devicetype_list(
    ctx: Context, session: Session, request: dict[str, Any]
) -> dict[str, Any]:
    found = await ctx.dh.device_types.find(principal_of(session), **filters(request))
    return {"deviceTypes": [device_type.to_json() for device_type in found]}


@action("devicetype/get", {"deviceTypeId": ID}, ("deviceTypeId",))
async def devicetype_get(ctx: Context, session: Session, request: dict[str, Any]) -> dict[str, Any]:
    found = await ctx.dh.device_types.get(principal_of(session), request["deviceTypeId"])
    return {"deviceType": found.to_json()}


# -- tokens --------------------------------------------------------------------------------


@action("token/create", {"payload": TOKEN_PAYLOAD}, ("payload",))
async def token_create(ctx: Context, session: Session, request: dict[str, Any]) -> dict[str, Any]:
    principal = principal_of(session)
    require(principal, Action.ManageToken)
    pair = await ctx.auth.mint(principal, mint_request(request["payload"]))
    return {"accessToken": pair.access.token, "refreshToken": pair.refresh.token}


# -- configuration and cluster -------------------------------------------------------------

PROPERTY_NAME = Str(min_length=1, max_length=128)


@action("configuration/get", {"name": PROPERTY_NAME}, ("name",))
async def configuration_get(
    ctx: Context, session: Session, request: dict[str, Any]
) -> dict[str, Any]:
    found = await ctx.dh.catalog.get_property(principal_of(session), request["name"])
    return {"configuration": found.to_json()}


@action(
    "configuration/put",
    {"name": PROPERTY_NAME, "value": Str(max_length=4096)},
    ("name", "value"),
)
async def configuration_put(
    ctx: Context, session: Session, request: dict[str, Any]
) -> dict[str, Any]:
    saved = await ctx.dh.catalog.put_property(
        principal_of(session), request["name"], request["value"]
    )
    return {"configuration": saved.to_json()}


@action("configuration/delete", {"name": PROPERTY_NAME}, ("name",))
async def configuration_delete(ctx: Context, session: Session, request: dict[str, Any]) -> None:
    await ctx.dh.catalog.delete_property(principal_of(session), request["name"])


@action("cluster/info", {})
async def cluster_info(ctx: Context, session: Session, request: dict[str, Any]) -> dict[str, Any]:
    """What a client may know of the deployment: this instance and how instances are joined
    (never an address or a credential)."""
    return {
        "clusterInfo": {
            "instanceId": ctx.settings.instance_id,
            "bus": "redis" if ctx.hub.bus.shared else "in-process",
        }
    }
