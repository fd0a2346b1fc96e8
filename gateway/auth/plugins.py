"""Plugins: token pairs bound to a topic, registered, listed and revoked by a ManagePlugin holder.

A plugin's tokens are its owner's tokens narrowed to reading notifications and/or commands within
the topic, with the topic in the ``plugin`` claim; the edges let such a token subscribe and do
nothing else. Deleting the plugin revokes its login session, which closes its sockets.
"""

from __future__ import annotations

import json
from typing import TypeVar

from gateway.auth.login import AuthService
from gateway.auth.minting import MintRequest
from gateway.auth.revoker import Receipt
from gateway.auth.tokens import TokenPair, topic_claims
from gateway.errors import Forbidden, GatewayError, NotFound, Unauthorized, Unprocessable
from gateway.store.plugins import Plugin, PluginStore
from gateway.types import Action, Principal, RevocationReason, Topic

MAX_TOPIC_BYTES = 2048
"""The topic as the token carries it (JSON, non-ASCII escaped): a token stays well within what an
Authorization header (8 KiB) and an ``authenticate`` message accept."""

PLUGIN_ACTIONS = frozenset(
    {
        "authenticate",
        "server/info",
        "notification/subscribe",
        "notification/unsubscribe",
        "command/subscribe",
        "command/unsubscribe",
        "subscription/list",
    }
)
"""The WebSocket actions a plugin's session may send; anything else is refused."""


def _require(principal: Principal) -> None:
    if not principal.may(Action.ManagePlugin):
        raise Forbidden("Missing permission: ManagePlugin")


def refuse_plugin(principal: Principal, what: str) -> None:
    """A plugin's token serves its subscriptions only (REST and other actions are refused)."""
    if principal.scope.topic is not None:
        raise Forbidden(f"A plugin's token may only subscribe to its topic, not {what}")


T = TypeVar("T", int, str)


def _within(
    asked: frozenset[T] | None, allowed: frozenset[T] | None, what: str
) -> frozenset[T] | None:
    if allowed is None:
        return asked
    if asked is None:
        return allowed
    if outside := sorted(map(str, asked - allowed)):
        raise Forbidden(f"{what} outside the plugin's topic: {', '.join(outside)}")
    return asked


def topic_filters(
    principal: Principal,
    network_ids: frozenset[int] | None,
    device_type_ids: frozenset[int] | None,
    names: frozenset[str] | None,
) -> tuple[frozenset[int] | None, frozenset[int] | None, frozenset[str] | None]:
    """A subscription's filters within the principal's topic: what it leaves open is the
    topic's; what it asks beyond the topic is refused (403). Unchanged for other tokens."""
    topic = principal.scope.topic
    if topic is None:
        return network_ids, device_type_ids, names
    return (
        _within(network_ids, topic.network_ids, "networkIds"),
        _within(device_type_ids, topic.device_type_ids, "deviceTypeIds"),
        _within(names, topic.names, "names"),
    )


class PluginService:
    def __init__(self, store: PluginStore, auth: AuthService) -> None:
        self.store = store
        self.auth = auth

    async def create(
        self, caller: Principal, name: str, description: str | None, topic: Topic
    ) -> tuple[Plugin, TokenPair]:
        """Mint the caller's tokens narrowed to the topic, then record the plugin; its
        networks must be within the caller's reach (the mint's own checks)."""
        _require(caller)
        actions = frozenset(
            action
            for action, wanted in (
                (Action.GetDeviceNotification, topic.notifications),
                (Action.GetDeviceCommand, topic.commands),
            )
            if wanted
        )
        if not actions:
            raise Unprocessable("topic: give notifications and/or commands")
        if len(json.dumps(topic_claims(topic))) > MAX_TOPIC_BYTES:
            raise Unprocessable(
                f"topic: at most {MAX_TOPIC_BYTES} bytes of JSON (it travels in every token)"
            )
        plugin_id = await self.store.next_id()
        pair = await self.auth.mint(
            caller,
            MintRequest(
                actions=actions,
                network_ids=topic.network_ids,
                plugin_id=plugin_id,
                topic=topic,
            ),
        )
        sid = self.auth.codec.principal(pair.access.token).sid
        try:
            plugin = await self.store.create(
                plugin_id, name, description, caller.user_id, topic_claims(topic), sid
            )
        except GatewayError:
            await self.auth.revoke_session(sid, reason=RevocationReason.PLUGIN_NOT_REGISTERED)
            raise
        return plugin, pair

    async def page(self, caller: Principal, limit: int, offset: int) -> list[Plugin]:
        _require(caller)
        return await self.store.page(None, limit, offset)

    async def delete(self, caller: Principal, plugin_id: int) -> Receipt:
        _require(caller)
        plugin = await self.store.delete(plugin_id)
        if plugin is None:
            raise NotFound("Plugin not found")
        return await self.auth.revoke_session(plugin.sid, reason=RevocationReason.PLUGIN_DELETED)

    def authenticate(self, token: str) -> Principal:
        """The principal of a valid plugin access token (seed: plugin/authenticate)."""
        principal = self.auth.authenticate(token)
        if principal.scope.topic is None:
            raise Unauthorized("Not a plugin's token")
        return principal
