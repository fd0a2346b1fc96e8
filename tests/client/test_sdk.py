"""The Python SDK against a real gateway over real HTTP and WebSocket: requests, subscriptions
that survive a closed socket without a gap or a repeat, token renewal and revocation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.client import (
    BadCredentials,
    ClientClosed,
    GatewayClient,
    GatewayUnavailable,
    OutcomeUnknown,
    RequestFailed,
    Subscription,
    TokenExpired,
    TokenRevoked,
)
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, AppFactory, bearer, login
from tests.realtime.helpers import ALICE_EMAIL, PASSWORD, World, build_world, rest

WAIT = 10.0


def base_url(client: TestClient[Any, Any]) -> str:
    return str(client.make_url("")).rstrip("/")


async def take(subscription: Subscription, count: int) -> list[dict[str, Any]]:
    async with asyncio.timeout(WAIT):
        return [await anext(subscription) for _ in range(count)]


async def nothing_more(subscription: Subscription) -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await anext(subscription)


async def session_ids(world: World, user_id: int | None = None) -> list[str]:
    body = await rest(world.client, "GET", "/v1/sessions", world.admin, 200)
    return [s["id"] for s in body["sessions"] if user_id in (None, s["user_id"])]


@pytest.fixture
async def world(client: TestClient[Any, Any]) -> World:
    return await build_world(client)


async def test_the_readme_journey(world: World) -> None:
    url = base_url(world.client)
    async with GatewayClient(url, email=ALICE_EMAIL, password=PASSWORD) as gw:
        notifications = await gw.notifications(device_id="d1").start()
        inserted = await gw.insert_notification("d1", "temperature", {"celsius": 21.5})
        assert set(inserted) == {"id", "timestamp"}
        [pushed] = await take(notifications, 1)
        assert pushed == {
            "id": inserted["id"],
            "deviceId": "d1",
            "networkId": world.n1,
            "deviceTypeId": 1,
            "notification": "temperature",
            "parameters": {"celsius": 21.5},
            "timestamp": inserted["timestamp"],
        }

        commands = await gw.commands(device_id="d1", with_updates=True).start()
        command = await gw.insert_command("d1", "set", {"celsius": 20})
        assert command["command"] == "set" and command["status"] is None
        await gw.update_command("d1", command["id"], status="done", result={"ok": True})
        first, update = await take(commands, 2)
        assert (first["id"], first["status"], first["parameters"]) == (
            command["id"],
            None,
            {"celsius": 20},
        )
        assert (update["id"], update["status"], update["result"]) == (
            command["id"],
            "done",
            {"ok": True},
        )
        assert [d["id"] for d in await gw.devices()] == ["d1", "d3"]
        await nothing_more(notifications)


async def test_since_replays_what_came_before_then_goes_live(world: World) -> None:
    url = base_url(world.client)
    async with GatewayClient(url, token=world.alice) as gw:
        early = [await gw.insert_notification("d1", f"early-{i}") for i in range(3)]
        subscription = gw.notifications(device_id="d1", since=early[0]["timestamp"])
        replayed = await take(subscription, 2)
        if replayed[0]["id"] == early[0]["id"]:
            # Stored with microseconds, emitted with milliseconds: the item of the given
            # millisecond may come back, later ones always do.
            replayed = replayed[1:] + await take(subscription, 1)
        assert [n["id"] for n in replayed] == [early[1]["id"], early[2]["id"]]
        late = await gw.insert_notification("d1", "late")
        assert [n["id"] for n in await take(subscription, 1)] == [late["id"]]


async def test_a_wrong_password_raises_bad_credentials_with_the_servers_message(
    world: World,
) -> None:
    client = GatewayClient(base_url(world.client), email=ALICE_EMAIL, password="wrong")
    with pytest.raises(BadCredentials, match=r"^Invalid email or password$"):
        await client.connect()
    assert not client.connected
    with pytest.raises(BadCredentials):  # may be tried again; the answer is the same
        await client.connect()
    await client.close()
    with pytest.raises(ClientClosed):
        await client.connect()


async def test_a_refresh_token_is_enough(world: World) -> None:
    async with GatewayClient(base_url(world.client), refresh_token=world.alice_refresh) as gw:
        assert (await gw.insert_notification("d1", "hello"))["id"] > 0
        assert gw.access_token is not None


async def test_an_error_reply_raises_request_failed(world: World) -> None:
    async with GatewayClient(base_url(world.client), token=world.alice) as gw:
        with pytest.raises(RequestFailed) as failed:
            await gw.insert_notification("d2", "not-mine")
        assert (failed.value.action, failed.value.code) == ("notification/insert", 403)
        with pytest.raises(RequestFailed) as refused:
            await gw.notifications(device_id="d2").start()
        assert refused.value.code == 403
        assert gw.connected


async def test_an_insert_whose_reply_is_lost_is_not_resent_but_reported(world: World) -> None:
    """A reply that cannot come in time (1 µs): the insert may have been applied, so the client
    says so instead of sending it again; a request that changes nothing is not in doubt."""
    async with GatewayClient(base_url(world.client), token=world.alice) as gw:
        subscription = await gw.notifications(device_id="d1").start()
        gw.connection.request_timeout = 1e-6
        with pytest.raises(OutcomeUnknown, match="may or may not have been applied"):
            await gw.insert_notification("d1", "in-doubt")
        with pytest.raises(GatewayUnavailable):
            await gw.server_info()
        gw.connection.request_timeout = 10.0
        [applied] = await take(subscription, 1)
        assert applied["notification"] == "in-doubt"
        await nothing_more(subscription)


async def test_a_subscription_survives_the_server_closing_its_socket(world: World) -> None:
    """DELETE /v1/sessions/{id} closes the socket (4004) while items keep coming: the
    subscriber reconnects, resumes from the last item, and sees each exactly once, in order."""
    url = base_url(world.client)
    async with (
        GatewayClient(url, email=ALICE_EMAIL, password=PASSWORD, backoff_base=0.05) as reader,
        GatewayClient(url, token=world.admin) as writer,
    ):
        subscription = await reader.notifications(device_id="d1").start()
        ids = [(await writer.insert_notification("d1", "n", {"i": i}))["id"] for i in range(20)]
        assert [n["id"] for n in await take(subscription, 5)] == ids[:5]
        sessions = await session_ids(world, world.alice_id)
        assert len(sessions) == 1
        for session_id in sessions:
            await rest(world.client, "DELETE", f"/v1/sessions/{session_id}", world.admin, 204)
        ids += [
            (await writer.insert_notification("d1", "n", {"i": i}))["id"] for i in range(20, 40)
        ]
        received = await take(subscription, 35)
        assert [n["id"] for n in received] == ids[5:]
        assert [n["parameters"]["i"] for n in received] == list(range(5, 40))
        await nothing_more(subscription)
        assert reader.connection.reconnects == 1
        assert writer.connection.reconnects == 0


async def test_the_access_token_is_renewed_before_it_expires(make_client: AppFactory) -> None:
    """A 2 s access token and a 0.5 s grace: without a renewal the socket would be closed with
    4002 within 2.5 s. The client renews over the socket and never reconnects."""
    client = await make_client(access_ttl=2.0, ws_expiry_grace=0.5, jwt_leeway=0.0)
    world = await build_world(client)
    async with GatewayClient(base_url(client), email=ALICE_EMAIL, password=PASSWORD) as gw:
        first = gw.access_token
        subscription = await gw.notifications(device_id="d1").start()
        await asyncio.sleep(5.0)  # two and a half token lifetimes: the point of the test
        assert gw.access_token != first
        inserted = await gw.insert_notification("d1", "still-here")
        assert [n["id"] for n in await take(subscription, 1)] == [inserted["id"]]
        assert gw.connection.reconnects == 0
        assert world.alice != gw.access_token


async def test_a_token_that_cannot_be_renewed_ends_with_token_expired(
    make_client: AppFactory,
) -> None:
    """A bare access token of 2 s: the client cannot renew it, and says so (at connect on a
    machine slow enough for it to expire first, else from the iteration)."""
    client = await make_client(access_ttl=2.0, ws_expiry_grace=0.2, jwt_leeway=0.0)
    await build_world(client)
    token = (await login(client, ALICE_EMAIL, PASSWORD))["access_token"]
    with pytest.raises(TokenExpired):
        async with GatewayClient(base_url(client), token=token) as gw:
            subscription = await gw.notifications(device_id="d1").start()
            await take(subscription, 1)


async def test_revocation_raises_token_revoked_and_the_client_stays_down(world: World) -> None:
    url = base_url(world.client)
    async with GatewayClient(url, email=ALICE_EMAIL, password=PASSWORD) as gw:
        subscription = await gw.notifications(device_id="d1").start()
        await rest(
            world.client, "POST", "/v1/auth/revoke", world.admin, 200, {"user_id": world.alice_id}
        )
        with pytest.raises(TokenRevoked, match="4003"):
            await take(subscription, 1)
        with pytest.raises(TokenRevoked):
            await gw.insert_notification("d1", "after")
        assert not gw.connected
        assert await session_ids(world) == []
    with pytest.raises(ClientClosed):
        await gw.insert_notification("d1", "closed")


async def test_a_logged_out_refresh_token_is_refused_as_revoked(world: World) -> None:
    tokens = await login(world.client, ALICE_EMAIL, PASSWORD)
    response = await world.client.post("/v1/auth/logout", headers=bearer(tokens["access_token"]))
    assert response.status == 204
    client = GatewayClient(base_url(world.client), refresh_token=tokens["refresh_token"])
    with pytest.raises(TokenRevoked):
        await client.connect()


async def test_constructor_refuses_incomplete_credentials() -> None:
    with pytest.raises(ValueError, match="email and password together"):
        GatewayClient("http://127.0.0.1:1", email=ADMIN_EMAIL)
    with pytest.raises(ValueError, match="a token or a refresh_token"):
        GatewayClient("http://127.0.0.1:1")
    with pytest.raises(ValueError, match="base URL"):
        GatewayClient("ws://127.0.0.1:1", password=ADMIN_PASSWORD, email=ADMIN_EMAIL)


async def test_a_slow_consumer_holds_at_most_max_pending_and_misses_nothing(
    world: World,
) -> None:
    """Pushes beyond ``max_pending`` are not queued; once the consumer has taken what was, the
    subscription resumes from the last one and the gateway replays the rest."""
    url = base_url(world.client)
    async with GatewayClient(url, token=world.alice) as gw:
        subscription = await gw.notifications(device_id="d1", max_pending=5).start()
        inserted = [(await gw.insert_notification("d1", f"n{i}"))["id"] for i in range(20)]
        async with asyncio.timeout(WAIT):
            while subscription.pending() < 5:
                await asyncio.sleep(0.01)
        # Not a synchronisation: room for the 15 pushes that must not be queued to arrive.
        await asyncio.sleep(0.2)
        assert subscription.pending() == 5
        assert [n["id"] for n in await take(subscription, 20)] == inserted
        assert subscription.resumed >= 1
        late = await gw.insert_notification("d1", "late")
        assert [n["id"] for n in await take(subscription, 1)] == [late["id"]]
        await nothing_more(subscription)


async def test_max_pending_below_one_is_refused(world: World) -> None:
    async with GatewayClient(base_url(world.client), token=world.alice) as gw:
        with pytest.raises(ValueError, match="max_pending must be at least 1"):
            gw.notifications(max_pending=0)
