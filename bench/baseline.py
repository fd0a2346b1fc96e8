"""The baseline: a bare aiohttp WebSocket relay, the ceiling of this stack on this machine.

It speaks enough of the gateway's envelope for the same load generator (authenticate,
device/save, notification/subscribe, notification/insert, server/info) but checks nothing and
stores nothing: orjson, uvloop and aiohttp with the same WebSocket settings as the gateway
(heartbeat, message size limit, no compression). What the gateway costs beyond it is the price of
authorization, persistence and its session machinery.

With ``--store DATABASE_URL`` it is the control for the cost of storage: the same relay also
writes every notification it acknowledges to PostgreSQL, in batches every 50 ms with the
gateway's own insert (``gateway.store.writer``), so that the database's work lands on the
machine exactly as it does beside the gateway.

With ``--lean`` its read loop drops each message once handled (the idle-memory what-if: the
gateway's does, this relay as written keeps the last one).

With ``--redis URL`` it is one instance of a bare cluster: every insert is also published once on
Redis (on its device's channel), and the relay subscribes to the device channels its own
subscribers need and delivers what other instances publish there (its own echoes are skipped
by an origin tag, without a parse). That is the least a cluster of relays has to do.

Run: ``python -m bench.baseline --port 8100 [--store postgresql://...] [--lean] [--redis URL]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from bench import raise_nofile_limit
from gateway.store.db import create_pool
from gateway.store.writer import insert_notifications
from gateway.types import Notification

HEARTBEAT = 30.0
MAX_MESSAGE_BYTES = 64 * 1024
STORE_INTERVAL = 0.05
"""The gateway's default GATEWAY_PERSIST_INTERVAL."""
STORE_FIRST_ID = 10**15
"""The stored relay's ids, far above the gateway's in the same table."""


def iso(epoch: float) -> str:
    """The same timestamp form the gateway sends (millisecond UTC ISO-8601)."""
    whole = int(epoch)
    millis = min(999, round((epoch - whole) * 1000))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


class Relay:
    """Routes by device and by network; one serialization per message for all subscribers."""

    def __init__(self, lean: bool = False, heartbeat: float = HEARTBEAT) -> None:
        self.lean = lean
        self.heartbeat = heartbeat
        """Drop each message once handled (a what-if: as written, the read loop keeps its last
        message and its parse alive while the socket idles, as straightforward code does)."""
        self.pending: list[Notification] | None = None
        """Acknowledged and not yet written (None: not storing)."""
        self.networks: dict[str, int] = {}
        self.by_device: dict[str, list[tuple[web.WebSocketResponse, bytes]]] = {}
        self.by_network: dict[int, list[tuple[web.WebSocketResponse, bytes]]] = {}
        self.ids = itertools.count(1)
        self.subscription_ids = itertools.count(1)
        self.cluster: Cluster | None = None

    def _reply(self, action: Any, request_id: Any, payload: dict[str, Any] | None = None) -> bytes:
        body: dict[str, Any] = {"action": action, "requestId": request_id, "status": "success"}
        if payload:
            body.update(payload)
        return orjson.dumps(body)

    async def insert(self, ws: web.WebSocketResponse, request: dict[str, Any]) -> None:
        device_id = request["deviceId"]
        body = request["notification"]
        item_id = next(self.ids)
        stamp = iso(time.time())
        network_id = self.networks.get(device_id)
        item = orjson.dumps(
            {
                "id": item_id,
                "deviceId": device_id,
                "networkId": network_id,
                "deviceTypeId": None,
                "notification": body["notification"],
                "parameters": body.get("parameters"),
                "timestamp": stamp,
            }
        )
        if self.pending is not None:
            self.pending.append(
                Notification(
                    id=STORE_FIRST_ID + item_id,
                    device_id=device_id,
                    network_id=network_id or 0,
                    device_type_id=None,
                    notification=body["notification"],
                    parameters=body.get("parameters"),
                    timestamp=time.time(),
                )
            )
        await self.deliver(device_id, network_id or 0, item)
        if self.cluster is not None:
            self.cluster.publish(device_id, item)
        await ws.send_frame(
            self._reply(
                "notification/insert",
                request.get("requestId"),
                {"notification": {"id": item_id, "timestamp": stamp}},
            ),
            WSMsgType.TEXT,
        )

    async def deliver(self, device_id: str, network_id: int, item: bytes) -> None:
        for routes in (self.by_device.get(device_id), self.by_network.get(network_id)):
            for subscriber, id_bytes in routes or ():
                if not subscriber.closed:
                    await subscriber.send_frame(
                        b'{"action":"notification/insert","subscriptionId":'
                        + id_bytes
                        + b',"notification":'
                        + item
                        + b"}",
                        WSMsgType.TEXT,
                    )

    def subscribe(
        self, ws: web.WebSocketResponse, request: dict[str, Any], mine: list[tuple[Any, Any]]
    ) -> int:
        subscription_id = next(self.subscription_ids)
        entry = (ws, str(subscription_id).encode())
        if request.get("deviceId"):
            self.by_device.setdefault(request["deviceId"], []).append(entry)
            mine.append((self.by_device[request["deviceId"]], entry))
            if self.cluster is not None:
                self.cluster.listen(request["deviceId"])
        for network_id in request.get("networkIds") or ():
            self.by_network.setdefault(network_id, []).append(entry)
            mine.append((self.by_network[network_id], entry))
        return subscription_id

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(
            heartbeat=self.heartbeat, max_msg_size=MAX_MESSAGE_BYTES, compress=False
        )
        await ws.prepare(request)
        mine: list[tuple[list[Any], Any]] = []
        try:
            async for message in ws:
                if message.type is not WSMsgType.TEXT and message.type is not WSMsgType.BINARY:
                    continue
                body = orjson.loads(message.data)
                await self._dispatch(ws, body, mine)
                if self.lean:
                    del message, body
        finally:
            for routes, entry in mine:
                if entry in routes:
                    routes.remove(entry)
        return ws

    async def _dispatch(
        self, ws: web.WebSocketResponse, body: dict[str, Any], mine: list[tuple[list[Any], Any]]
    ) -> None:
        action = body.get("action")
        request_id = body.get("requestId")
        if action == "notification/insert":
            await self.insert(ws, body)
        elif action == "notification/subscribe":
            subscription_id = self.subscribe(ws, body, mine)
            if self.cluster is not None:
                await self.cluster.settled()
            await ws.send_frame(
                self._reply(action, request_id, {"subscriptionId": subscription_id}),
                WSMsgType.TEXT,
            )
        elif action == "device/save":
            device = body.get("device") or {}
            self.networks[body["deviceId"]] = int(device.get("networkId") or 0)
            await ws.send_frame(self._reply(action, request_id), WSMsgType.TEXT)
        else:  # authenticate, server/info and anything else: accepted, unchecked
            await ws.send_frame(self._reply(action, request_id), WSMsgType.TEXT)


class Cluster:
    """The relay's Redis side: one PUBLISH per insert, pipelined; one subscriber connection."""

    def __init__(self, relay: Relay, url: str) -> None:
        import redis.asyncio as aioredis

        self.relay = relay
        self.client = aioredis.Redis.from_url(url)
        self.pubsub = self.client.pubsub()
        self.tag = f"{id(self)}".encode() + b"\x1e"
        self.outbox: list[tuple[str, bytes]] = []
        self.ready = asyncio.Event()
        self.wanted: set[str] = set()
        self.subscribed: set[str] = set()

    def publish(self, device_id: str, item: bytes) -> None:
        self.outbox.append((f"bench:dev:{device_id}", self.tag + item))
        self.ready.set()

    def listen(self, device_id: str) -> None:
        self.wanted.add(f"bench:dev:{device_id}")

    async def settled(self) -> None:
        new = sorted(self.wanted - self.subscribed)
        if new:
            await self.pubsub.subscribe(*new)
            self.subscribed.update(new)

    async def publishing(self) -> None:
        while True:
            await self.ready.wait()
            self.ready.clear()
            batch, self.outbox = self.outbox, []
            async with self.client.pipeline(transaction=False) as pipe:
                for channel, payload in batch:
                    pipe.publish(channel, payload)
                await pipe.execute()

    async def reading(self) -> None:
        await self.pubsub.subscribe("bench:hello")  # a connection before the first device
        while True:
            message = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None:
                continue
            origin, _, item = message["data"].partition(b"\x1e")
            if origin + b"\x1e" == self.tag:
                continue
            device_id = message["channel"][len(b"bench:dev:") :].decode()
            await self.relay.deliver(device_id, self.relay.networks.get(device_id, 0), item)


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _store(relay: Relay, url: str) -> None:
    """Every STORE_INTERVAL, what was acknowledged since, in one batch."""
    pool = await create_pool(url, max_size=2)
    try:
        while True:
            await asyncio.sleep(STORE_INTERVAL)
            batch, relay.pending = relay.pending or [], []
            if batch:
                await insert_notifications(pool, batch)
    finally:
        await pool.close()


def create_app(
    store: str | None = None,
    lean: bool = False,
    redis: str | None = None,
    heartbeat: float = HEARTBEAT,
) -> web.Application:
    relay = Relay(lean, heartbeat)
    app = web.Application()
    if redis is not None:

        async def clustering(_app: web.Application) -> AsyncIterator[None]:
            cluster = relay.cluster = Cluster(relay, redis)
            tasks = [
                asyncio.create_task(cluster.publishing()),
                asyncio.create_task(cluster.reading()),
            ]
            yield
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        app.cleanup_ctx.append(clustering)
    if store is not None:
        relay.pending = []

        async def storing(_app: web.Application) -> AsyncIterator[None]:
            task = asyncio.create_task(_store(relay, store))
            yield
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        app.cleanup_ctx.append(storing)
    app.router.add_get("/v1/ws", relay.handle)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--store", default=None, help="also store what is acknowledged here")
    parser.add_argument("--lean", action="store_true", help="keep no reference to the last message")
    parser.add_argument("--redis", default=None, help="join a bare cluster on this Redis")
    parser.add_argument("--heartbeat", type=float, default=HEARTBEAT, help="ping interval (s)")
    args = parser.parse_args()
    raise_nofile_limit()
    import uvloop

    web.run_app(
        create_app(args.store, args.lean, args.redis, args.heartbeat),
        host="127.0.0.1",
        port=args.port,
        print=None,
        access_log=None,
        shutdown_timeout=5,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
