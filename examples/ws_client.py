"""A device and a dashboard on one gateway, in about sixty lines.

Run the gateway (``make run``), then:

    .venv/bin/python examples/ws_client.py \
        --email admin@localhost --password "$(cat data/admin_password)"

It logs in over REST, makes a network and a device, subscribes a dashboard socket to the
device's notifications, has the device socket push one, and prints what the dashboard receives.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid

import aiohttp


async def main(base: str, email: str, password: str) -> None:
    async with aiohttp.ClientSession(base) as http:
        login = await http.post("/v1/auth/login", json={"email": email, "password": password})
        login.raise_for_status()
        token = (await login.json())["access_token"]
        auth = {"Authorization": f"Bearer {token}"}

        network = await http.post(
            "/v1/networks", json={"name": f"example-{uuid.uuid4().hex[:6]}"}, headers=auth
        )
        network_id = (await network.json())["id"]
        device_id = f"thermo-{uuid.uuid4().hex[:6]}"
        saved = await http.put(
            f"/v1/devices/{device_id}",
            json={"name": "Thermometer", "networkId": network_id},
            headers=auth,
        )
        saved.raise_for_status()

        # The dashboard authenticates on the upgrade; the device with an authenticate message.
        async with (
            http.ws_connect("/v1/ws", headers=auth) as dashboard,
            http.ws_connect("/v1/ws") as device,
        ):
            await dashboard.send_json(
                {"action": "notification/subscribe", "requestId": 1, "deviceId": device_id}
            )
            print("dashboard <-", await dashboard.receive_json())

            await device.send_json({"action": "authenticate", "requestId": 1, "token": token})
            print("device    <-", await device.receive_json())
            await device.send_json(
                {
                    "action": "notification/insert",
                    "requestId": 2,
                    "deviceId": device_id,
                    "notification": {
                        "notification": "temperature",
                        "parameters": {"celsius": 21.5},
                    },
                }
            )
            print("device    <-", await device.receive_json())
            print("dashboard <-", await asyncio.wait_for(dashboard.receive_json(), 5))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--email", required=True)
    parser.add_argument("--password", required=True)
    options = parser.parse_args()
    asyncio.run(main(options.url, options.email, options.password))
