"""DeviceHive's own Python client (PyPI ``devicehive`` 2.1.6, unmodified) over its HTTP
transport against /api/rest: refresh its token, get its device, send a notification, subscribe
to commands, and answer a command that the inserter then sees saved."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from devicehive import DeviceHive, Handler  # type: ignore[import-untyped]

from tests.realtime.helpers import World, build_world, connect, rest

WAIT = 20.0


@pytest.fixture
async def world(client: Any) -> World:
    return await build_world(client)


class DeviceFlow(Handler):  # type: ignore[misc]
    """What a device written against DeviceHive's client does: runs in the client's threads."""

    def __init__(self, api: Any) -> None:
        super().__init__(api)
        self.subscribed = threading.Event()
        self.device: dict[str, Any] = {}
        self.notification: dict[str, Any] = {}
        self.answered: list[int] = []

    def handle_connect(self) -> None:
        device = self.api.get_device("d1")
        self.device = {
            "id": device.id,
            "name": device.name,
            "network_id": device.network_id,
            "device_type_id": device.device_type_id,
        }
        sent = device.send_notification("temperature", parameters={"celsius": 21.5})
        self.notification = {"id": sent.id, "timestamp": sent.timestamp}
        device.subscribe_insert_commands()
        self.subscribed.set()

    def handle_command_insert(self, command: Any) -> None:
        command.status = "done"
        command.result = {"celsius": command.parameters["celsius"]}
        command.save()
        self.answered.append(command.id)
        self.api.disconnect()


async def test_the_unmodified_client_runs_its_basic_flow_over_http(world: World) -> None:
    url = str(world.client.make_url("/api/rest"))
    hive = DeviceHive(DeviceFlow)
    hive.connect(url, refresh_token=world.alice_refresh, transport_keep_alive=False, timeout=WAIT)
    handler: DeviceFlow = hive.handler
    assert await asyncio.to_thread(handler.subscribed.wait, WAIT), hive.transport.exception_info

    assert handler.device == {"id": "d1", "name": "d1", "network_id": world.n1, "device_type_id": 1}
    history = await rest(world.client, "GET", "/v1/devices/d1/notifications", world.admin, 200)
    assert [(n["id"], n["notification"], n["parameters"]) for n in history["notifications"]] == [
        (handler.notification["id"], "temperature", {"celsius": 21.5})
    ]

    # The inserter: a dashboard on the WebSocket, watching its command's updates.
    dashboard = await connect(world.client, world.admin)
    await dashboard.subscribe("command", deviceId="d1", returnUpdatedCommands=True)
    inserted = await dashboard.ok(
        "command/insert", deviceId="d1", command={"command": "set", "parameters": {"celsius": 20}}
    )
    command_id = inserted["command"]["id"]
    assert (await dashboard.push())["action"] == "command/insert"
    update = await dashboard.push(WAIT)
    assert update["action"] == "command/update"
    assert (update["command"]["id"], update["command"]["status"], update["command"]["result"]) == (
        command_id,
        "done",
        {"celsius": 20},
    )
    await asyncio.to_thread(hive.transport.join, WAIT)
    assert not hive.transport.is_alive()
    assert hive.transport.exception_info is None
    assert handler.answered == [command_id]
    saved = await rest(world.client, "GET", "/v1/devices/d1/commands", world.admin, 200)
    assert [(c["id"], c["status"], c["userId"]) for c in saved["commands"]] == [
        (command_id, "done", 1)
    ]
