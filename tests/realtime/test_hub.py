"""The hub on its own: which sessions a revocation closes, the timers it arms, which channels it
listens on, and who gets a published item. Real sockets, a real PostgreSQL behind the registry,
the in-process bus; no gateway around it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient

from gateway.auth.permissions import ALL_ACTIONS, CLIENT_ACTIONS
from gateway.auth.revocation import RevocationView
from gateway.bus.control import MEMBERSHIP, Control
from gateway.bus.memory import MemoryBus
from gateway.config import Settings
from gateway.devices.registry import Registry
from gateway.metrics import Metrics
from gateway.realtime.hub import Hub
from gateway.realtime.session import Session
from gateway.store.db import Pool
from gateway.store.devices import DeviceStore
from gateway.store.users import UserStore
from gateway.types import (
    NOTIFICATION,
    Action,
    CloseCode,
    Notification,
    Principal,
    Revocation,
    RevocationKind,
    Scope,
)

WAIT = 5.0


@dataclass
class Rig:
    hub: Hub
    bus: MemoryBus
    control: Control
    view: RevocationView
    client: TestClient[Any, Any]
    accepted: asyncio.Queue[Session]
    sockets: list[Any] = field(default_factory=list)

    async def connect(self) -> tuple[Session, Any]:
        ws = await self.client.ws_connect("/ws")
        self.sockets.append(ws)
        session = await asyncio.wait_for(self.accepted.get(), WAIT)
        return session, ws


async def _rig(aiohttp_client: Any, settings: Settings, pool: Pool) -> Rig:
    bus = MemoryBus("hub-test")
    control = Control(bus)
    registry = Registry(DeviceStore(pool), UserStore(pool), control)
    view = RevocationView()
    hub = Hub(settings, bus, control, registry, view, Metrics())
    accepted: asyncio.Queue[Session] = asyncio.Queue()

    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        session = Session(ws, hub.session_env, request.remote)
        hub.add(session)
        accepted.put_nowait(session)
        try:
            async for _ in ws:
                pass
        finally:
            hub.remove(session)
        return ws

    app = web.Application()
    app.router.add_get("/ws", handle)
    client: TestClient[Any, Any] = await aiohttp_client(app)
    return Rig(hub, bus, control, view, client, accepted)


@pytest.fixture
async def rig(aiohttp_client: Any, settings: Settings, pool: Pool) -> AsyncIterator[Rig]:
    rig = await _rig(aiohttp_client, settings, pool)
    yield rig
    # The client side answers the close handshakes, or each would wait out its 5 s bound.
    for ws in rig.sockets:
        await ws.close()
    await rig.hub.shutdown()


def principal(
    user_id: int = 1,
    *,
    role: str = "admin",
    jti: str = "j1",
    sid: str = "s1",
    issued_at: float | None = None,
    expires_in: float = 3600,
    device_ids: frozenset[str] | None = None,
    actions: frozenset[Action] | None = None,
) -> Principal:
    now = time.time()
    return Principal(
        user_id=user_id,
        role=role,
        actions=(ALL_ACTIONS if role == "admin" else CLIENT_ACTIONS)
        if actions is None
        else actions,
        scope=Scope(device_ids=device_ids),
        jti=jti,
        sid=sid,
        issued_at=now - 1 if issued_at is None else issued_at,
        expires_at=now + expires_in,
    )


def revocation(kind: RevocationKind, subject: str, at: float | None = None) -> Revocation:
    now = time.time() if at is None else at
    return Revocation(
        kind=kind, subject=subject, reason="logout", revoked_at=now, expires_at=now + 60
    )


async def close_of(ws: Any) -> tuple[int, str]:
    message = await asyncio.wait_for(ws.receive(), WAIT)
    assert message.type is WSMsgType.CLOSE, message
    return message.data, message.extra


async def test_a_session_not_authenticated_in_time_is_closed(
    aiohttp_client: Any, settings: Settings, pool: Pool
) -> None:
    rig = await _rig(aiohttp_client, settings.with_overrides(ws_auth_timeout=0.1), pool)
    _, ws = await rig.connect()
    assert await close_of(ws) == (CloseCode.AUTH_TIMEOUT, "authentication timeout")


@pytest.mark.parametrize(
    ("kind", "subject"), [("jti", "j1"), ("sid", "s1"), ("user", "1"), ("device", "d1")]
)
async def test_a_revocation_closes_exactly_the_sessions_it_covers(
    rig: Rig, kind: RevocationKind, subject: str
) -> None:
    covered, covered_ws = await rig.connect()
    other, _ = await rig.connect()
    rig.hub.bind(covered, principal(device_ids=frozenset({"d1"})))
    rig.hub.bind(other, principal(2, jti="j2", sid="s2", device_ids=frozenset({"d2"})))
    assert rig.hub.close_revoked([revocation(kind, subject)]) == 1
    assert await close_of(covered_ws) == (CloseCode.TOKEN_REVOKED, "token revoked: logout")
    assert not other.closing


async def test_a_cut_off_spares_tokens_issued_after_it(rig: Rig) -> None:
    cut = time.time()
    before, _ = await rig.connect()
    after, _ = await rig.connect()
    rig.hub.bind(before, principal(issued_at=cut - 1))
    rig.hub.bind(after, principal(jti="j2", sid="s2", issued_at=cut + 0.5))
    assert rig.hub.close_revoked([revocation("user", "1", at=cut)]) == 1
    assert before.closing and not after.closing


async def test_an_expired_token_pauses_the_session_then_closes_it_after_the_grace(
    aiohttp_client: Any, settings: Settings, pool: Pool
) -> None:
    rig = await _rig(aiohttp_client, settings.with_overrides(ws_expiry_grace=0.2), pool)
    session, ws = await rig.connect()
    rig.hub.bind(session, principal(expires_in=0.1))
    async with asyncio.timeout(WAIT):
        while not session.expired:
            await asyncio.sleep(0.01)
    assert session.live_principal is None and not session.closing
    assert await close_of(ws) == (CloseCode.TOKEN_EXPIRED, "token expired")


async def test_a_fresh_token_within_the_grace_resumes_the_session(
    aiohttp_client: Any, settings: Settings, pool: Pool
) -> None:
    rig = await _rig(aiohttp_client, settings.with_overrides(ws_expiry_grace=0.3), pool)
    session, _ = await rig.connect()
    rig.hub.bind(session, principal(expires_in=0.05))
    async with asyncio.timeout(WAIT):
        while not session.expired:
            await asyncio.sleep(0.01)
    rig.hub.bind(session, principal(jti="j2"))
    assert not session.expired
    await asyncio.sleep(0.5)
    assert not session.closing


async def test_an_administrator_terminates_one_session_by_id(rig: Rig) -> None:
    session, ws = await rig.connect()
    assert not rig.hub.terminate("not-a-number")
    assert not rig.hub.terminate(str(session.id + 1000))
    assert rig.hub.terminate(str(session.id))
    assert await close_of(ws) == (
        CloseCode.SESSION_TERMINATED,
        "session terminated by an administrator",
    )
    assert not rig.hub.terminate(str(session.id))


async def test_the_hub_listens_on_a_channel_only_while_a_subscription_needs_it(rig: Rig) -> None:
    first, _ = await rig.connect()
    second, _ = await rig.connect()
    rig.hub.bind(first, principal())
    rig.hub.bind(second, principal(jti="j2", sid="s2"))
    one = rig.hub.subscribe(first, NOTIFICATION, device_id="d1")
    two = rig.hub.subscribe(second, NOTIFICATION, device_id="d1")
    assert "dev:d1" in rig.bus.channels
    rig.hub.unsubscribe(one)
    assert "dev:d1" in rig.bus.channels
    rig.hub.unsubscribe(two)
    assert "dev:d1" not in rig.bus.channels


async def test_a_subscription_to_all_networks_follows_the_users_memberships(rig: Rig) -> None:
    session, _ = await rig.connect()
    rig.hub.bind(session, principal(5, role="client"))
    subscription = rig.hub.subscribe(session, NOTIFICATION)
    assert subscription.channels == set()
    rig.control.publish(MEMBERSHIP, user_id=5, network_ids=[3, 4])
    assert subscription.channels == {"net:3", "net:4"}
    rig.control.publish(MEMBERSHIP, user_id=5, network_ids=[4])
    assert subscription.channels == {"net:4"}
    assert "net:3" not in rig.bus.channels


def _item(item_id: int = 10) -> Notification:
    return Notification(
        id=item_id,
        device_id="d1",
        network_id=3,
        device_type_id=None,
        notification="temp",
        parameters={"v": 1},
        timestamp=1_700_000_000.0,
    )


async def test_a_published_item_reaches_each_subscription_that_may_see_it(rig: Rig) -> None:
    allowed, allowed_ws = await rig.connect()
    blind, blind_ws = await rig.connect()
    expired, expired_ws = await rig.connect()
    rig.hub.bind(allowed, principal())
    rig.hub.bind(blind, principal(2, jti="j2", sid="s2", actions=frozenset({Action.GetDevice})))
    rig.hub.bind(expired, principal(3, jti="j3", sid="s3"))
    subscriptions = [
        rig.hub.subscribe(session, NOTIFICATION, device_id="d1")
        for session in (allowed, blind, expired)
    ]
    expired.expired = True
    rig.hub.publish(b"n", _item())
    frame = await asyncio.wait_for(allowed_ws.receive(), WAIT)
    assert orjson.loads(frame.data) == {
        "action": "notification/insert",
        "subscriptionId": subscriptions[0].id,
        "notification": _item().to_json(),
    }
    for ws in (blind_ws, expired_ws):
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.receive(), 0.2)


async def test_a_revoked_principal_gets_no_push_even_before_its_close(rig: Rig) -> None:
    session, ws = await rig.connect()
    rig.hub.bind(session, principal())
    rig.hub.subscribe(session, NOTIFICATION, device_id="d1")
    rig.view.apply(revocation("jti", "j1"))
    rig.hub.publish(b"n", _item())
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ws.receive(), 0.2)


async def test_sessions_are_described_and_shut_down_with_going_away(rig: Rig) -> None:
    first, first_ws = await rig.connect()
    second, second_ws = await rig.connect()
    rig.hub.bind(first, principal())
    described = rig.hub.describe_all()
    assert [entry["id"] for entry in described] == [str(first.id), str(second.id)]
    assert [entry["user_id"] for entry in described] == [1, None]
    assert {entry["instance"] for entry in described} == {rig.hub.settings.instance_id}
    closes = [asyncio.create_task(close_of(ws)) for ws in (first_ws, second_ws)]
    await rig.hub.shutdown()
    assert rig.hub.shutting_down
    for close in closes:
        assert await close == (CloseCode.GOING_AWAY, "server shutting down")
