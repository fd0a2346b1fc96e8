"""Start-up and shutdown of the realtime part: registry, hub, message writer, routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from aiohttp import web

from gateway.api.routing import WEBSOCKET_PATH
from gateway.auth.service import AuthService
from gateway.bus.control import Control
from gateway.config import Settings
from gateway.realtime.endpoint import websocket
from gateway.realtime.hub import Hub
from gateway.realtime.registry import Registry
from gateway.realtime.service import DeviceService
from gateway.store.db import Pool
from gateway.store.devices import DeviceStore
from gateway.store.messages import MessageStore
from gateway.store.users import UserStore

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Realtime:
    registry: Registry
    hub: Hub
    messages: MessageStore
    device_service: DeviceService


def install_routes(app: web.Application) -> None:
    app.router.add_get(WEBSOCKET_PATH, websocket)


async def start_realtime(
    app: web.Application,
    settings: Settings,
    pool: Pool,
    control: Control,
    auth: AuthService,
    devices: DeviceStore,
    users: UserStore,
    stack: contextlib.AsyncExitStack,
) -> Realtime:
    registry = Registry(devices, users, control)
    await registry.load()
    hub = Hub(settings, control.bus, control, registry, auth.view)
    auth.revoker.add_closer(hub.close_revoked)
    messages = MessageStore(pool, interval=settings.persist_interval, batch=settings.persist_batch)
    writer = asyncio.create_task(messages.run(), name="message-writer")
    retention = asyncio.create_task(_retention(messages, settings), name="retention")
    refresher = asyncio.create_task(
        registry.refresh_forever(settings.reconcile_interval), name="registry-refresh"
    )

    async def stop() -> None:
        await hub.shutdown()
        retention.cancel()
        refresher.cancel()
        await messages.close()
        writer.cancel()
        await asyncio.gather(writer, retention, refresher, return_exceptions=True)

    stack.push_async_callback(stop)
    app.on_shutdown.append(lambda _app: hub.shutdown())
    service = DeviceService(
        devices=devices,
        users=users,
        messages=messages,
        registry=registry,
        hub=hub,
        control=control,
    )
    return Realtime(registry=registry, hub=hub, messages=messages, device_service=service)


async def _retention(messages: MessageStore, settings: Settings) -> None:
    while True:
        try:
            await messages.purge(time.time() - settings.retention)
        except (OSError, TimeoutError) as exc:
            log.warning("retention purge failed, will retry: %s", exc)
        await asyncio.sleep(min(3600.0, settings.retention))
