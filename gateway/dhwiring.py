"""Wires the DeviceHive surface into the app: device types, history, catalog, plugins, the
/api/rest dialect and its REST routes (kept apart from app.py, which stays one screenful of
start-up order)."""

from __future__ import annotations

from aiohttp import web

from gateway.api import devicehive
from gateway.api import devicetypes as _device_type_routes  # noqa: F401 - registers routes
from gateway.api import history as _history_routes  # noqa: F401 - registers routes
from gateway.api import plugins as _plugin_routes  # noqa: F401 - registers routes
from gateway.api.routing import DeviceHiveRest
from gateway.auth.login import AuthService
from gateway.auth.plugins import PluginService
from gateway.devices.access import Access
from gateway.devices.catalog import CatalogService
from gateway.devices.devicetypes import DeviceTypeService
from gateway.devices.history import HistoryService
from gateway.devices.messages import Messages
from gateway.realtime.dispatcher import DeviceHiveContext
from gateway.store.catalog import CatalogStore
from gateway.store.db import Pool
from gateway.store.devices import DeviceStore
from gateway.store.devicetypes import DeviceTypeStore
from gateway.store.messages import MessageStore
from gateway.store.plugins import PluginStore
from gateway.store.users import UserStore

install = devicehive.install


def build(
    app: web.Application,
    pool: Pool,
    users: UserStore,
    devices: DeviceStore,
    messages: MessageStore,
    access: Access,
    auth: AuthService,
    message_cases: Messages,
    max_waiting: int,
) -> tuple[DeviceHiveRest, DeviceHiveContext]:
    """The surface's use cases for each edge; waiting long polls answer at shutdown."""
    type_store = DeviceTypeStore(pool)
    access.registry.types = type_store  # clients' device type access, checked with the rest
    device_types = DeviceTypeService(type_store, auth.revoker.control)
    history = HistoryService(messages, access, max_waiting)
    catalog = CatalogService(CatalogStore(pool), users, devices, type_store, access)
    app.on_shutdown.append(lambda _app: _close(history))
    rest = DeviceHiveRest(
        messages=message_cases,
        device_types=device_types,
        history=history,
        catalog=catalog,
        plugins=PluginService(PluginStore(pool), auth),
    )
    return rest, DeviceHiveContext(device_types=device_types, history=history, catalog=catalog)


async def _close(history: HistoryService) -> None:
    history.close()
