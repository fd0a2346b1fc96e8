"""An SDK subscription across a PostgreSQL outage (a cluster the test owns): while the gateway
cannot replay, its resubscribe is refused (5xx) and the client backs off and tries again instead
of dropping the subscription; once the database is back, nothing acknowledged is missing."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest

from gateway.app import create_app
from gateway.client import GatewayClient, OutcomeUnknown, RequestFailed
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, make_settings
from tests.realtime.helpers import create_network, put_device, rest
from tests.support.servers import PostgresProcess

pytestmark = pytest.mark.timeout(120)


async def test_a_subscription_outlives_a_database_outage(
    own_postgres: PostgresProcess, aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(make_settings(own_postgres.url, tmp_path)))
    url = str(client.make_url("")).rstrip("/")
    options: dict[str, Any] = {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    async with (
        GatewayClient(url, backoff_base=0.05, backoff_cap=0.3, **options) as reader,
        GatewayClient(url, **options) as writer,
    ):
        token = reader.access_token
        assert token is not None
        await put_device(client, token, "pump", await create_network(client, token, "plant"))
        subscription = await reader.notifications(device_id="pump").start()
        acknowledged = [
            (await writer.insert_notification("pump", "n", {"i": i}))["id"] for i in range(3)
        ]
        async with asyncio.timeout(10):
            received = [await anext(subscription) for _ in range(3)]

        await asyncio.to_thread(own_postgres.stop)
        body = await rest(client, "GET", "/v1/sessions", token, 200)
        for session in body["sessions"]:
            await rest(client, "DELETE", f"/v1/sessions/{session['id']}", token, 204)
        async with asyncio.timeout(10):
            while reader.connection.reconnects < 3:  # resubscribing is refused while it is down
                await asyncio.sleep(0.05)
        for i in range(3, 6):
            # Refused or in doubt during the outage: not counted.
            with contextlib.suppress(RequestFailed, OutcomeUnknown):
                inserted = await writer.insert_notification("pump", "n", {"i": i})
                acknowledged.append(inserted["id"])
        await asyncio.to_thread(own_postgres.start)

        async with asyncio.timeout(30):
            while len(received) < len(acknowledged):
                received.append(await anext(subscription))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                received.append(await anext(subscription))
    assert [n["id"] for n in received] == acknowledged
