"""notification/ and command/ subscribe and unsubscribe, and subscription/list."""

from __future__ import annotations

from typing import Any

from gateway.auth.plugins import topic_filters
from gateway.errors import Forbidden, NotFound, Unprocessable
from gateway.realtime.actions.fields import IDS, NAMES, TIMESTAMP, since
from gateway.realtime.dispatcher import Context, Later, Reply, action, principal_of
from gateway.realtime.replay import replayer
from gateway.realtime.session import Session
from gateway.schema import DEVICE_ID, Bool, Int, Str
from gateway.types import COMMAND, NOTIFICATION, Action

SUBSCRIBE = {
    "deviceId": DEVICE_ID,
    "networkIds": IDS,
    "deviceTypeIds": IDS,
    "names": NAMES,
    "timestamp": TIMESTAMP,
}


async def _subscribe(
    ctx: Context, session: Session, request: dict[str, Any], kind: str, needed: Action
) -> Reply | Later:
    principal = principal_of(session)
    access = ctx.access
    access.require(principal, needed)
    # Each subscription keeps its filters (up to a message's worth of names) while it lives:
    # a session that only ever subscribes must meet a bound.
    most = ctx.settings.ws_max_subscriptions
    if len(session.subscriptions) >= most:
        raise Forbidden(
            f"Too many subscriptions on this socket (at most {most}); unsubscribe first"
        )
    device_id: str | None = request.get("deviceId")
    if request.get("networkIds") == [] or request.get("deviceTypeIds") == []:
        raise Unprocessable("networkIds and deviceTypeIds, when given, must not be empty")
    network_ids = frozenset(request["networkIds"]) if "networkIds" in request else None
    if device_id is not None and network_ids is not None:
        raise Unprocessable("give deviceId or networkIds, not both")
    if device_id is not None:
        await access.device_for(principal, device_id, needed)
    if network_ids is not None:
        visible = await access.visible_networks(principal)
        outside = sorted(network_ids - visible) if visible is not None else []
        if outside:
            raise Forbidden("networkIds outside the token's scope: " + ", ".join(map(str, outside)))
    start = since(request.get("timestamp"), "timestamp")
    network_ids, device_type_ids, names = topic_filters(
        principal,
        network_ids,
        frozenset(request["deviceTypeIds"]) if request.get("deviceTypeIds") else None,
        frozenset(request["names"]) if request.get("names") else None,
    )
    subscription = ctx.hub.subscribe(
        session,
        kind,
        device_id=device_id,
        network_ids=network_ids,
        device_type_ids=device_type_ids,
        names=names,
        with_updates=bool(request.get("returnUpdatedCommands", False)),
        replaying=start is not None,
    )
    await ctx.hub.bus.settled(subscription.channels)
    if start is None:
        return Reply({"subscriptionId": subscription.id})

    def abandon() -> None:
        ctx.hub.unsubscribe(subscription)
        session.release(subscription, done=True)

    return Later(replayer(ctx, subscription, start), abandon)


@action("notification/subscribe", SUBSCRIBE)
async def notification_subscribe(
    ctx: Context, session: Session, request: dict[str, Any]
) -> Reply | Later:
    return await _subscribe(ctx, session, request, NOTIFICATION, Action.GetDeviceNotification)


@action("command/subscribe", {**SUBSCRIBE, "returnUpdatedCommands": Bool()})
async def command_subscribe(
    ctx: Context, session: Session, request: dict[str, Any]
) -> Reply | Later:
    return await _subscribe(ctx, session, request, COMMAND, Action.GetDeviceCommand)


def _unsubscribe(ctx: Context, session: Session, request: dict[str, Any], kind: str) -> None:
    subscription_id = request.get("subscriptionId")
    if subscription_id is None:
        for subscription in [s for s in session.subscriptions.values() if s.kind == kind]:
            ctx.hub.unsubscribe(subscription)
        return
    found = session.subscriptions.get(subscription_id)
    if found is None or found.kind != kind:
        raise NotFound(f"Subscription {subscription_id} not found")
    ctx.hub.unsubscribe(found)


@action("notification/unsubscribe", {"subscriptionId": Int(minimum=1)})
async def notification_unsubscribe(ctx: Context, session: Session, request: dict[str, Any]) -> None:
    _unsubscribe(ctx, session, request, NOTIFICATION)


@action("command/unsubscribe", {"subscriptionId": Int(minimum=1)})
async def command_unsubscribe(ctx: Context, session: Session, request: dict[str, Any]) -> None:
    _unsubscribe(ctx, session, request, COMMAND)


@action("subscription/list", {"type": Str(enum=[NOTIFICATION, COMMAND])})
async def subscription_list(
    ctx: Context, session: Session, request: dict[str, Any]
) -> dict[str, Any]:
    kind = request.get("type")
    return {
        "subscriptions": [
            s.to_json() for s in session.subscriptions.values() if kind is None or s.kind == kind
        ]
    }
