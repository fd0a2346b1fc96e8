"""This instance's live sessions: indexed for revocation, routed for fan-out.

Messages travel on per-device (``dev:ID``) and per-network (``net:ID``) channels. A subscription
listens on exactly one kind of channel, so a session never gets one message twice for one
subscription, and this instance listens on a channel only while a local subscription needs it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import defaultdict
from collections.abc import Coroutine, Iterable
from typing import Any

import orjson

from gateway.auth.revocation import RevocationView
from gateway.bus.base import Bus
from gateway.bus.control import MEMBERSHIP, NETWORK_CREATED, NETWORK_DELETED, Control
from gateway.config import Settings
from gateway.devices.registry import RESYNCED, Registry
from gateway.metrics import Metrics
from gateway.realtime.deadlines import Deadlines
from gateway.realtime.heartbeat import Heartbeat
from gateway.realtime.index import Index
from gateway.realtime.protocol import push_parts
from gateway.realtime.session import Limits, Session, SessionEnv
from gateway.realtime.subscription import Subscription
from gateway.types import (
    COMMAND,
    NOTIFICATION,
    Action,
    CloseCode,
    Command,
    Notification,
    Principal,
    Revocation,
)

log = logging.getLogger(__name__)

_KINDS = {
    kind: (push_parts(action, key), needed, wanted)
    for kind, (action, key, needed, wanted) in {
        b"n": ("notification/insert", b"notification", Action.GetDeviceNotification, NOTIFICATION),
        b"c": ("command/insert", b"command", Action.GetDeviceCommand, COMMAND),
        b"u": ("command/update", b"command", Action.GetDeviceCommand, COMMAND),
    }.items()
}
_PUSH_KINDS = {b"n": "notification", b"c": "command", b"u": "command_update"}


def _auth_timeout(session: Session) -> None:
    if session.principal is None:
        session.close(CloseCode.AUTH_TIMEOUT, "authentication timeout")


def _expired_too_long(session: Session) -> None:
    session.close(CloseCode.TOKEN_EXPIRED, "token expired")


def device_channel(device_id: str) -> str:
    return f"dev:{device_id}"


def network_channel(network_id: int) -> str:
    return f"net:{network_id}"


class Hub:
    def __init__(
        self,
        settings: Settings,
        bus: Bus,
        control: Control,
        registry: Registry,
        view: RevocationView,
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        metrics.closed_by_code([1000, 1006, *CloseCode])
        self._pushed = {kind: metrics.pushes_by_kind[name] for kind, name in _PUSH_KINDS.items()}
        self.bus = bus
        self.registry = registry
        self.view = view
        self.sessions: dict[int, Session] = {}
        self._by_user: Index[int, Session] = Index()
        self._by_jti: Index[str, Session] = Index()
        self._by_sid: Index[str, Session] = Index()
        self._by_device: Index[str, Session] = Index()
        self.deadlines: Deadlines[Session] = Deadlines()
        self.heartbeat = Heartbeat(settings.ws_heartbeat)
        self._on_expiry = self._expire  # bound once: a deadline keeps its action per session
        self._routes: defaultdict[str, set[Subscription]] = defaultdict(set)
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.shutting_down = False
        self.session_env = SessionEnv(
            limits=Limits.from_settings(settings),
            closing=self.deadlines.cancel,
            spawn=self.spawn,
            revoked=metrics.revocation_close_seconds.observe,
        )
        control.set_data_handler(self.deliver)
        registry.listen(self._on_registry)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- sessions --------------------------------------------------------------------------

    def add(self, session: Session) -> None:
        self.sessions[session.id] = session
        self.deadlines.set(session, self.settings.ws_auth_timeout, _auth_timeout)
        self.heartbeat.start(session)

    def remove(self, session: Session) -> None:
        session.closing = True
        session.cancel_tasks()
        session.ended()
        self.sessions.pop(session.id, None)
        for subscription in list(session.subscriptions.values()):
            self.unsubscribe(subscription)
        self._unindex(session)
        self.deadlines.cancel(session)
        self.heartbeat.stop(session)
        self.metrics.closed(session.close_code or session.ws.close_code)

    def _indexes(self, principal: Principal) -> Iterable[tuple[Index[Any, Session], Any]]:
        yield self._by_user, principal.user_id
        yield self._by_jti, principal.jti
        for sid in principal.families:
            yield self._by_sid, sid
        for device_id in principal.scope.device_ids or ():
            yield self._by_device, device_id

    def _unindex(self, session: Session) -> None:
        if session.principal is None:
            return
        for index, key in self._indexes(session.principal):
            index.discard(key, session)

    def bind(self, session: Session, principal: Principal) -> None:
        """Give the session a (new) principal: index it and arm the expiry timers."""
        self._unindex(session)
        session.principal = principal
        session.expired = False
        for index, key in self._indexes(principal):
            index.add(key, session)
        self.deadlines.set(session, principal.expires_at - time.time(), self._on_expiry)
        for subscription in session.subscriptions.values():
            if subscription.dynamic:
                self._route(subscription)

    def _expire(self, session: Session) -> None:
        """Requests now get 401 and pushes stop; a fresh token within the grace resumes."""
        session.expired = True
        self.deadlines.set(session, self.settings.ws_expiry_grace, _expired_too_long)

    def close_revoked(self, revocations: list[Revocation]) -> int:
        """The revocation closer: end every local session a revocation covers."""
        closed = 0
        for revocation in revocations:
            if revocation.kind == "user":
                candidates = self._by_user.get(int(revocation.subject))
            elif revocation.kind == "jti":
                candidates = self._by_jti.get(revocation.subject)
            elif revocation.kind == "sid":
                candidates = self._by_sid.get(revocation.subject)
            else:
                candidates = self._by_device.get(revocation.subject)
            for session in candidates:
                principal = session.principal
                if (
                    principal is not None
                    and revocation.covers(principal)
                    and session.close(
                        CloseCode.TOKEN_REVOKED,
                        f"token revoked: {revocation.reason}",
                        revoked_at=revocation.revoked_at,
                    )
                ):
                    closed += 1
        return closed

    def describe_all(self) -> list[dict[str, Any]]:
        instance = self.settings.instance_id
        return [session.describe(instance) for session in self.sessions.values()]

    def terminate(self, session_id: str) -> bool:
        # isascii: str.isdigit() also holds for digits int() refuses, such as "²".
        number = session_id.isascii() and session_id.isdigit()
        session = self.sessions.get(int(session_id)) if number else None
        if session is None:
            return False
        return session.close(CloseCode.SESSION_TERMINATED, "session terminated by an administrator")

    async def shutdown(self) -> None:
        """Every socket gets 1001 after its queued frames are written."""
        self.shutting_down = True
        for session in list(self.sessions.values()):
            session.close(CloseCode.GOING_AWAY, "server shutting down")
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        self.deadlines.close()
        self.heartbeat.close()

    # -- subscriptions ---------------------------------------------------------------------

    def subscribe(
        self,
        session: Session,
        kind: str,
        *,
        device_id: str | None = None,
        network_ids: frozenset[int] | None = None,
        device_type_ids: frozenset[int] | None = None,
        names: frozenset[str] | None = None,
        with_updates: bool = False,
        replaying: bool = False,
    ) -> Subscription:
        subscription = Subscription(
            id=next(self._ids),
            session=session,
            kind=kind,
            device_id=device_id,
            network_ids=network_ids,
            device_type_ids=device_type_ids,
            names=names,
            with_updates=with_updates,
            replay_buffer=[] if replaying else None,
        )
        session.add_subscription(subscription)
        self._route(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscription.session.drop_subscription(subscription)
        self._set_channels(subscription, set())

    def reachable_networks(self, principal: Principal) -> set[int]:
        """The networks a subscription with no device or network filter covers."""
        networks = (
            set(self.registry.network_ids)
            if principal.is_admin
            else set(self.registry.memberships(principal.user_id))
        )
        if principal.scope.network_ids is not None:
            networks &= principal.scope.network_ids
        return networks

    def _route(self, subscription: Subscription) -> None:
        if subscription.device_id is not None:
            wanted = {device_channel(subscription.device_id)}
        elif subscription.network_ids is not None:
            wanted = {network_channel(n) for n in subscription.network_ids}
        else:
            principal = subscription.session.principal
            networks = set() if principal is None else self.reachable_networks(principal)
            wanted = {network_channel(n) for n in networks}
        self._set_channels(subscription, wanted)

    def _set_channels(self, subscription: Subscription, wanted: set[str]) -> None:
        for channel in subscription.channels - wanted:
            routes = self._routes.get(channel)
            if routes is not None:
                routes.discard(subscription)
                if not routes:
                    del self._routes[channel]
                    self.bus.unsubscribe(channel)
        for channel in wanted - subscription.channels:
            routes = self._routes[channel]
            if not routes:
                self.bus.subscribe(channel)
            routes.add(subscription)
        subscription.channels = wanted

    def _on_registry(self, kind: str, event: dict[str, Any]) -> None:
        if kind not in (MEMBERSHIP, NETWORK_CREATED, NETWORK_DELETED, RESYNCED):
            return
        user_id = int(event["user_id"]) if kind == MEMBERSHIP else None
        sessions = self._by_user.get(user_id) if user_id is not None else self.sessions.values()
        for session in list(sessions):
            for subscription in session.subscriptions.values():
                if subscription.dynamic:
                    self._route(subscription)

    # -- fan-out ---------------------------------------------------------------------------

    def publish(self, kind: bytes, item: Notification | Command) -> None:
        """Local subscribers first, straight from the item; other instances through the bus.
        The item is serialized once, and only when someone may want it."""
        device = device_channel(item.device_id)
        network = network_channel(item.network_id)
        routes = self._routes
        by_device = routes.get(device)
        by_network = routes.get(network)
        bus = self.bus
        to_device = bus.shared and bus.wants(device)  # an instance alone has nobody to ask
        to_network = bus.shared and bus.wants(network)
        if not (by_device or by_network or to_device or to_network):
            return
        item_json = orjson.dumps(item.to_json())
        for found in (by_device, by_network):
            if found:
                self._fan_out(
                    found,
                    kind,
                    item.device_id,
                    item.network_id,
                    item.device_type_id,
                    item.name,
                    item.id,
                    item_json,
                )
        if to_device or to_network:
            header = orjson.dumps(
                [item.device_id, item.network_id, item.device_type_id, item.name, item.id]
            )
            frame = kind + header + b"\n" + item_json
            if to_device:
                bus.publish_remote(device, frame)
            if to_network:
                bus.publish_remote(network, frame)

    def deliver(self, channel: str, frame: bytes) -> None:
        """A message from another instance: hand it to the local subscriptions on the channel."""
        routes = self._routes.get(channel)
        if not routes:
            return
        newline = frame.index(b"\n")
        device_id, network_id, device_type_id, name, item_id = orjson.loads(frame[1:newline])
        self._fan_out(
            routes,
            frame[:1],
            device_id,
            network_id,
            device_type_id,
            name,
            item_id,
            frame[newline + 1 :],
        )

    def _fan_out(
        self,
        routes: set[Subscription],
        kind: bytes,
        device_id: str,
        network_id: int,
        device_type_id: int | None,
        name: str,
        item_id: int,
        item: bytes,
    ) -> None:
        """Every subscription that may see the item gets it: a bit test and dict look-ups,
        evaluated once per token (jti) when several subscriptions share one."""
        (prefix, middle), needed, wanted_kind = _KINDS[kind]
        is_update = kind == b"u"
        memberships = self.registry.memberships
        type_allowed = self.registry.type_allowed
        is_revoked = self.view.is_revoked
        verdicts: dict[str, bool] = {}
        sent = 0
        for subscription in routes:
            session = subscription.session
            principal = session.principal
            if principal is None or session.expired or session.closing:
                continue
            if subscription.kind != wanted_kind:
                continue
            if is_update and not subscription.with_updates:
                continue
            if subscription.filtered and not subscription.wants(network_id, device_type_id, name):
                continue
            allowed = verdicts.get(principal.jti)
            if allowed is None:
                allowed = verdicts[principal.jti] = bool(
                    principal.mask >> needed & 1
                    and principal.may_reach(device_id, network_id, memberships(principal.user_id))
                    and (principal.is_admin or type_allowed(principal.user_id, device_type_id))
                    and not is_revoked(principal)
                )
            if not allowed:
                continue
            data = b"".join((prefix, subscription.id_bytes, middle, item, b"}"))
            if subscription.replay_buffer is not None:
                # An update is a new state of an item the replay may already hold in an older
                # state: never drop it as a duplicate (key None).
                session.hold(subscription, None if is_update else item_id, data)
            else:
                session.send(data)
            sent += 1
        if sent:
            self._pushed[kind].value += sent
