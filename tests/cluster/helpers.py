"""Clients of real gateway processes: REST calls and a WebSocket peer, every wait bounded."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDictProxy

from tests.support.processes import ADMIN_EMAIL, ADMIN_PASSWORD, GatewayProcess

WAIT = 5.0
"""Upper bound for anything that should happen promptly (it takes milliseconds)."""

QUIET = 0.4
"""How long "nothing arrives" is watched for."""


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def call(
    http: aiohttp.ClientSession,
    gateway: GatewayProcess,
    method: str,
    path: str,
    token: str | None = None,
    json: Any = None,
) -> tuple[int, Any, CIMultiDictProxy[str]]:
    """One REST request: (status, JSON body or None, headers)."""
    headers = bearer(token) if token else {}
    async with http.request(method, gateway.url + path, json=json, headers=headers) as response:
        text = await response.text()
        body = orjson.loads(text) if text else None
        return response.status, body, response.headers


async def ok(
    http: aiohttp.ClientSession,
    gateway: GatewayProcess,
    method: str,
    path: str,
    token: str | None = None,
    json: Any = None,
    status: int = 200,
) -> Any:
    got, body, _ = await call(http, gateway, method, path, token, json)
    assert got == status, f"{method} {path} on {gateway.name}: {got} {body}"
    return body


async def login(
    http: aiohttp.ClientSession, gateway: GatewayProcess, email: str, password: str
) -> dict[str, Any]:
    body: dict[str, Any] = await ok(
        http, gateway, "POST", "/v1/auth/login", json={"email": email, "password": password}
    )
    return body


async def admin_token(http: aiohttp.ClientSession, gateway: GatewayProcess) -> str:
    return str((await login(http, gateway, ADMIN_EMAIL, ADMIN_PASSWORD))["access_token"])


async def token_status(http: aiohttp.ClientSession, gateway: GatewayProcess, token: str) -> int:
    """The status a token gets on an authenticated route that needs no permission."""
    status, _, _ = await call(http, gateway, "GET", "/v1/auth/tokenInfo", token)
    return status


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = WAIT, every: float = 0.02
) -> float:
    """Poll an async check until it holds (bounded); returns the seconds it took."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(every)
    return time.monotonic() - started


class Closed(AssertionError):
    def __init__(self, code: int | None) -> None:
        super().__init__(f"the socket closed (code {code})")
        self.code = code


class Peer:
    """A WebSocket client of one gateway. A reader task files replies by requestId and keeps
    pushes in arrival order, so a close is noticed even while nobody is waiting for a frame."""

    _ids = itertools.count(1)

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, name: str) -> None:
        self.ws = ws
        self.name = name
        self.pushes: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.closed_at: float | None = None
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    continue
                body = orjson.loads(message.data)
                future = self._waiting.pop(str(body.get("requestId")), None)
                if "status" in body and future is not None and not future.done():
                    future.set_result(body)
                else:
                    self.pushes.put_nowait(body)
        finally:
            self.closed_at = time.monotonic()
            self.close_code = self.ws.close_code
            self.closed.set()
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(Closed(self.close_code))

    async def request(self, action: str, **fields: Any) -> dict[str, Any]:
        """Send and return the reply, whatever its status."""
        if self.closed.is_set():
            raise Closed(self.close_code)
        request_id = f"r{next(self._ids)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        await self.ws.send_bytes(
            orjson.dumps({"action": action, "requestId": request_id, **fields})
        )
        return await asyncio.wait_for(future, WAIT)

    async def ok(self, action: str, **fields: Any) -> dict[str, Any]:
        reply = await self.request(action, **fields)
        assert reply["status"] == "success", f"{self.name} {action}: {reply}"
        return reply

    async def subscribe(self, kind: str = "notification", **fields: Any) -> int:
        reply = await self.ok(f"{kind}/subscribe", **fields)
        return int(reply["subscriptionId"])

    async def push(self, action: str | None = None, timeout: float = WAIT) -> dict[str, Any]:
        """The next push (of ``action`` when given; others before it are dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.name}: no {action or 'push'} within {timeout} s")
            try:
                body = await asyncio.wait_for(self.pushes.get(), remaining)
            except TimeoutError:
                continue
            if action is None or body.get("action") == action:
                return body

    async def quiet(self, within: float = QUIET) -> None:
        """Nothing is pushed for ``within`` seconds."""
        await asyncio.sleep(within)
        assert self.pushes.empty(), f"{self.name}: unexpected push {self.pushes.get_nowait()}"

    async def wait_closed(self, timeout: float = WAIT) -> int | None:
        try:
            await asyncio.wait_for(self.closed.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"{self.name}: still open after {timeout} s") from None
        return self.close_code

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(BaseException):
            await self._reader


async def connect(
    http: aiohttp.ClientSession, gateway: GatewayProcess, token: str | None, name: str = ""
) -> Peer:
    """A socket on ``gateway``, authenticated with the ``authenticate`` action when a token is
    given (so the session is bound when this returns)."""
    ws = await http.ws_connect(gateway.ws_url, timeout=aiohttp.ClientWSTimeout(ws_close=WAIT))
    peer = Peer(ws, name or f"peer@{gateway.name}")
    if token is not None:
        await peer.ok("authenticate", token=token)
    return peer


@dataclass
class World:
    """An admin, a network with a device, and a client user who belongs to the network."""

    admin: str
    network_id: int
    device_id: str
    user_id: int
    user_email: str
    user_password: str


async def make_world(
    http: aiohttp.ClientSession, gateway: GatewayProcess, *, device_id: str = "thermo-1"
) -> World:
    admin = await admin_token(http, gateway)
    network = await ok(http, gateway, "POST", "/v1/networks", admin, {"name": "plant"}, status=201)
    await ok(
        http,
        gateway,
        "PUT",
        f"/v1/devices/{device_id}",
        admin,
        {"name": device_id, "networkId": network["id"]},
        status=201,
    )
    email, password = "client@example.com", "client-password"
    user = await ok(
        http,
        gateway,
        "POST",
        "/v1/users",
        admin,
        {
            "name": "client",
            "email": email,
            "password": password,
            "role": "client",
            "networkIds": [network["id"]],
        },
        status=201,
    )
    return World(admin, network["id"], device_id, user["id"], email, password)


async def device_token(
    http: aiohttp.ClientSession, gateway: GatewayProcess, world: World
) -> dict[str, Any]:
    """A token pair for the client user scoped to the world's one device (what a device holds)."""
    pair: dict[str, Any] = await ok(
        http,
        gateway,
        "POST",
        "/v1/auth/token/create",
        world.admin,
        {"user_id": world.user_id, "deviceIds": [world.device_id]},
        status=201,
    )
    return pair


async def user_token(http: aiohttp.ClientSession, gateway: GatewayProcess, world: World) -> str:
    return str((await login(http, gateway, world.user_email, world.user_password))["access_token"])
