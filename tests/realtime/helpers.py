"""A thin WebSocket peer over aiohttp's real client, and the standard world the tests run in.

Every wait is bounded: a reply, a push or a close that does not come fails the test in seconds
instead of hanging it.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import ClientWebSocketResponse, WSMsgType
from aiohttp.test_utils import TestClient

from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, bearer, create_user, login

WAIT = 5.0
"""Upper bound for anything that should happen promptly."""

QUIET = 0.3
"""How long "nothing arrives" is watched for."""

CLOSING = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED)


class Closed(AssertionError):
    """The socket closed while a reply or push was awaited."""

    def __init__(self, code: int | None, reason: str | None) -> None:
        super().__init__(f"socket closed: {code} {reason!r}")
        self.code = code
        self.reason = reason


def _key(request_id: Any) -> bytes:
    """requestId is any JSON value, echoed back: replies are filed under its canonical JSON."""
    return orjson.dumps(request_id, option=orjson.OPT_SORT_KEYS)


class Peer:
    """One WebSocket client. Replies are matched by requestId; pushes are kept in arrival order
    until a test asks for them."""

    _ids = itertools.count(1)

    def __init__(self, ws: ClientWebSocketResponse) -> None:
        self.ws = ws
        self.pushes: deque[dict[str, Any]] = deque()
        self.replies: dict[bytes, dict[str, Any]] = {}
        self.close_code: int | None = None
        self.close_reason: str | None = None

    # -- low level -------------------------------------------------------------------------

    async def _receive(self, timeout: float) -> dict[str, Any]:
        """The next JSON frame; raises Closed when the socket closes instead."""
        if self.close_code is not None:
            raise Closed(self.close_code, self.close_reason)
        msg = await asyncio.wait_for(self.ws.receive(), timeout)
        if msg.type in CLOSING:
            if msg.type is WSMsgType.CLOSE:
                self.close_code, self.close_reason = msg.data, msg.extra
            else:
                self.close_code = self.ws.close_code
            raise Closed(self.close_code, self.close_reason)
        assert msg.type is WSMsgType.TEXT, msg
        body: dict[str, Any] = orjson.loads(msg.data)
        return body

    def _file(self, body: dict[str, Any]) -> None:
        if "status" in body:
            self.replies[_key(body.get("requestId"))] = body
        else:
            self.pushes.append(body)

    async def send(self, action: str, **fields: Any) -> str:
        """Send a request without waiting; returns its requestId."""
        request_id = f"r{next(self._ids)}"
        await self.ws.send_bytes(
            orjson.dumps({"action": action, "requestId": request_id, **fields})
        )
        return request_id

    async def send_raw(self, data: str) -> None:
        await self.ws.send_str(data)

    async def reply(self, request_id: Any, timeout: float = WAIT) -> dict[str, Any]:
        """The reply to ``request_id`` (pushes received meanwhile are kept)."""
        key = _key(request_id)
        deadline = time.monotonic() + timeout
        while key not in self.replies:
            self._file(await self._receive(max(0.01, deadline - time.monotonic())))
        return self.replies.pop(key)

    def has_reply(self, request_id: Any) -> bool:
        return _key(request_id) in self.replies

    # -- requests --------------------------------------------------------------------------

    async def request(self, action: str, **fields: Any) -> dict[str, Any]:
        """Send and return the reply, whatever its status."""
        return await self.reply(await self.send(action, **fields))

    async def ok(self, action: str, **fields: Any) -> dict[str, Any]:
        """Send, assert success, return the reply without the envelope."""
        request_id = await self.send(action, **fields)
        body = await self.reply(request_id)
        assert body["status"] == "success", body
        assert body["action"] == action and body["requestId"] == request_id, body
        return {k: v for k, v in body.items() if k not in ("action", "requestId", "status")}

    async def fails(self, action: str, code: int, error: str, **fields: Any) -> None:
        """Send and assert the exact error reply."""
        request_id = await self.send(action, **fields)
        assert await self.reply(request_id) == {
            "action": action,
            "requestId": request_id,
            "status": "error",
            "code": code,
            "error": error,
        }

    async def subscribe(self, kind: str = "notification", **fields: Any) -> int:
        body = await self.ok(f"{kind}/subscribe", **fields)
        assert set(body) == {"subscriptionId"}, body
        subscription_id: int = body["subscriptionId"]
        return subscription_id

    # -- pushes ----------------------------------------------------------------------------

    async def push(self, timeout: float = WAIT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while not self.pushes:
            self._file(await self._receive(max(0.01, deadline - time.monotonic())))
        return self.pushes.popleft()

    async def pushes_n(self, count: int, timeout: float = WAIT) -> list[dict[str, Any]]:
        return [await self.push(timeout) for _ in range(count)]

    async def no_push(self, wait: float = QUIET) -> None:
        """Nothing is pushed within ``wait`` seconds."""
        assert not self.pushes, list(self.pushes)
        try:
            self._file(await self._receive(wait))
        except TimeoutError:
            return
        raise AssertionError(f"unexpected frame: {list(self.pushes) or self.replies}")

    async def closed(self, timeout: float = WAIT) -> tuple[int | None, str | None]:
        """Wait for the server's close; returns (code, reason). Frames before it are kept."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._file(await self._receive(max(0.01, deadline - time.monotonic())))
        except Closed as exc:
            return exc.code, exc.reason

    async def is_open(self) -> bool:
        body = await self.request("server/info")
        return bool(body["status"] == "success")

    async def close(self) -> None:
        await self.ws.close()


async def connect(client: TestClient[Any, Any], token: str | None = None) -> Peer:
    """Open /v1/ws, with a Bearer token on the upgrade when given."""
    headers = bearer(token) if token is not None else None
    ws = await client.ws_connect("/v1/ws", headers=headers, autoping=True)
    return Peer(ws)


async def connect_authenticated(client: TestClient[Any, Any], token: str) -> Peer:
    """Open /v1/ws and authenticate with the ``authenticate`` message."""
    peer = await connect(client)
    assert await peer.ok("authenticate", token=token) == {}
    return peer


# -- REST helpers ----------------------------------------------------------------------------


async def rest(
    client: TestClient[Any, Any],
    method: str,
    path: str,
    token: str,
    expected: int,
    body: Any = None,
) -> Any:
    """A REST call that must answer ``expected``; returns the JSON body (None for 204)."""
    response = await client.request(method, path, json=body, headers=bearer(token))
    text = await response.text()
    assert response.status == expected, (response.status, text)
    return orjson.loads(text) if text else None


async def create_network(client: TestClient[Any, Any], token: str, name: str) -> int:
    network = await rest(client, "POST", "/v1/networks", token, 201, {"name": name})
    network_id: int = network["id"]
    return network_id


async def put_device(
    client: TestClient[Any, Any],
    token: str,
    device_id: str,
    network_id: int,
    device_type_id: int | None = None,
    expected: int = 201,
    **fields: Any,
) -> dict[str, Any]:
    body = {"name": device_id, "networkId": network_id, "deviceTypeId": device_type_id, **fields}
    device: dict[str, Any] = await rest(
        client, "PUT", f"/v1/devices/{device_id}", token, expected, body
    )
    return device


async def mint(client: TestClient[Any, Any], token: str, expected: int = 201, **body: Any) -> str:
    """POST /v1/auth/token/create; returns the access token."""
    pair = await rest(client, "POST", "/v1/auth/token/create", token, expected, body)
    access: str = pair["access_token"]
    return access


async def membership(
    client: TestClient[Any, Any], token: str, user_id: int, network_id: int, member: bool
) -> None:
    method = "PUT" if member else "DELETE"
    await rest(client, method, f"/v1/users/{user_id}/networks/{network_id}", token, 204)


@dataclass
class World:
    """Two networks, two device types, three devices, an admin and two clients:

    - device types 1 ("thermometer") and 2 ("relay");
    - network ``n1`` ("north"): devices ``d1`` (deviceTypeId 1) and ``d3`` (no type);
    - network ``n2`` ("south"): device ``d2`` (deviceTypeId 2);
    - ``alice`` (client) belongs to n1, ``bob`` (client) to n2.
    """

    client: TestClient[Any, Any]
    admin: str
    admin_refresh: str
    n1: int
    n2: int
    alice_id: int
    bob_id: int
    alice: str
    alice_refresh: str
    bob: str

    async def peer(self, token: str) -> Peer:
        return await connect(self.client, token)


ALICE_EMAIL = "alice@example.com"
BOB_EMAIL = "bob@example.com"
PASSWORD = "client-password"


async def build_world(client: TestClient[Any, Any]) -> World:
    admin = await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    token = admin["access_token"]
    n1 = await create_network(client, token, "north")
    n2 = await create_network(client, token, "south")
    for name in ("thermometer", "relay"):  # device types 1 and 2
        await rest(client, "POST", "/v1/device-types", token, 201, {"name": name})
    await put_device(client, token, "d1", n1, 1)
    await put_device(client, token, "d2", n2, 2)
    await put_device(client, token, "d3", n1, None)
    headers = bearer(token)
    alice = await create_user(client, headers, email=ALICE_EMAIL, network_ids=[n1])
    bob = await create_user(client, headers, email=BOB_EMAIL, network_ids=[n2])
    alice_tokens = await login(client, ALICE_EMAIL, PASSWORD)
    bob_tokens = await login(client, BOB_EMAIL, PASSWORD)
    return World(
        client=client,
        admin=token,
        admin_refresh=admin["refresh_token"],
        n1=n1,
        n2=n2,
        alice_id=alice["id"],
        bob_id=bob["id"],
        alice=alice_tokens["access_token"],
        alice_refresh=alice_tokens["refresh_token"],
        bob=bob_tokens["access_token"],
    )


def notification_push(
    subscription_id: int,
    item_id: int,
    timestamp: str,
    *,
    device_id: str,
    network_id: int,
    device_type_id: int | None,
    name: str,
    parameters: Any = None,
) -> dict[str, Any]:
    """The exact push a subscriber gets for one notification."""
    return {
        "action": "notification/insert",
        "subscriptionId": subscription_id,
        "notification": {
            "id": item_id,
            "deviceId": device_id,
            "networkId": network_id,
            "deviceTypeId": device_type_id,
            "notification": name,
            "parameters": parameters,
            "timestamp": timestamp,
        },
    }


async def insert(peer: Peer, device_id: str, name: str, parameters: Any = None) -> dict[str, Any]:
    """notification/insert; returns {id, timestamp}."""
    notification: dict[str, Any] = {"notification": name}
    if parameters is not None:
        notification["parameters"] = parameters
    body = await peer.ok("notification/insert", deviceId=device_id, notification=notification)
    assert set(body) == {"notification"} and set(body["notification"]) == {"id", "timestamp"}
    result: dict[str, Any] = body["notification"]
    return result


async def wait_past_second_boundary() -> None:
    """Sleep to just after a whole second: a token issued now with a 1 s lifetime then lives
    ~0.99 s (exp is whole seconds), not anything between 0 and 1 s."""
    await asyncio.sleep(1.0 - time.time() % 1.0 + 0.01)


async def insert_big(peer: Peer, names: list[str], size: int) -> None:
    """Notifications of d1 named ``names``, each with parameters {"blob": "x" * size}: what
    the byte bounds are tested with."""
    for name in names:
        await peer.ok(
            "notification/insert",
            deviceId="d1",
            notification={"notification": name, "parameters": {"blob": "x" * size}},
        )


async def insert_notifications(peer: Peer, named: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Notifications of d1 (network 1, device type 1) at the given (timestamp, name) pairs, with
    parameters {"i": index}; returned as the history shows them."""
    items = []
    for i, (stamp, name) in enumerate(named):
        body = await peer.ok(
            "notification/insert",
            deviceId="d1",
            notification={"notification": name, "parameters": {"i": i}, "timestamp": stamp},
        )
        items.append(
            {
                "id": body["notification"]["id"],
                "deviceId": "d1",
                "networkId": 1,
                "deviceTypeId": 1,
                "notification": name,
                "parameters": {"i": i},
                "timestamp": stamp,
            }
        )
    return items
