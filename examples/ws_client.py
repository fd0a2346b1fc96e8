"""A device and a dashboard on one gateway, with the Python SDK (gateway.client).

Run the gateway (``make run``), then:

    .venv/bin/python examples/ws_client.py \
        --email admin@localhost --password "$(cat data/admin_password)"

It logs in, makes a network and a device over REST, subscribes a dashboard to the device's
notifications and commands, has the device push a notification, sends the device a command from
the dashboard, has the device answer it, and prints what the dashboard receives.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid

import aiohttp

from gateway.client import GatewayClient


async def make_device(base: str, token: str) -> str:
    """Networks and devices are managed over REST; the SDK covers the live traffic."""
    auth = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(base) as http:
        network = await http.post(
            "/v1/networks", json={"name": f"example-{uuid.uuid4().hex[:6]}"}, headers=auth
        )
        network.raise_for_status()
        device_id = f"thermo-{uuid.uuid4().hex[:6]}"
        saved = await http.put(
            f"/v1/devices/{device_id}",
            json={"name": "Thermometer", "networkId": (await network.json())["id"]},
            headers=auth,
        )
        saved.raise_for_status()
        return device_id


async def main(base: str, email: str, password: str) -> list[str]:
    """Returns the lines it printed (the test suite runs it against a real gateway)."""
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        print(line)

    async with (
        GatewayClient(base, email=email, password=password) as dashboard,
        GatewayClient(base, email=email, password=password) as device,
    ):
        assert dashboard.access_token is not None
        device_id = await make_device(base, dashboard.access_token)
        notifications = await dashboard.notifications(device_id=device_id).start()
        commands = await dashboard.commands(device_id=device_id, with_updates=True).start()
        to_device = await device.commands(device_id=device_id, with_updates=False).start()

        await device.insert_notification(device_id, "temperature", {"celsius": 21.5})
        async with asyncio.timeout(5):
            pushed = await anext(notifications)
        say(f"dashboard <- notification {pushed['notification']} {pushed['parameters']}")

        await dashboard.insert_command(device_id, "set", {"celsius": 20})
        async with asyncio.timeout(5):
            command = await anext(to_device)
            say(f"device    <- command {command['command']} {command['parameters']}")
            await device.update_command(device_id, command["id"], status="done", result={"ok": 1})
            async for seen in commands:
                say(f"dashboard <- command {seen['command']} status={seen['status']}")
                if seen["status"] == "done":
                    break
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--email", required=True)
    parser.add_argument("--password", required=True)
    options = parser.parse_args()
    asyncio.run(main(options.url, options.email, options.password))
