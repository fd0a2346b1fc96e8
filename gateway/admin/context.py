"""The use cases an admin command runs, wired from the same settings as ``gateway serve``.

The same stores, revoker, account and auth services as the REST API: a change made here is
recorded in PostgreSQL and, with Redis configured, published on the bus, so the live sessions
of every running instance react as they would to the REST call. Without Redis the instances
pick revocations up at their next reconciliation (GATEWAY_RECONCILE_INTERVAL).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

from gateway.app import make_bus
from gateway.auth.accounts import AccountService
from gateway.auth.login import AuthService
from gateway.auth.services import build_auth
from gateway.auth.throttle import LoginThrottle
from gateway.auth.tokens import KeySet
from gateway.bus.control import Control
from gateway.config import ConfigError, Settings, redact
from gateway.devices.access import Access
from gateway.devices.networks import Networks
from gateway.devices.registry import Registry
from gateway.metrics import Metrics
from gateway.store.db import create_pool
from gateway.store.devices import DeviceStore
from gateway.store.embedded import EmbeddedPostgres
from gateway.store.migrations import migrate
from gateway.store.users import UserStore


@dataclass(slots=True)
class Admin:
    settings: Settings
    control: Control
    users: UserStore
    devices: DeviceStore
    auth: AuthService
    accounts: AccountService
    networks: Networks


@contextlib.asynccontextmanager
async def admin_context(settings: Settings) -> AsyncIterator[Admin]:
    # Its own name on the bus: an operator's GATEWAY_INSTANCE_ID belongs to a running server.
    settings = settings.with_overrides(
        instance_id=f"cli-{socket.gethostname()}-{os.getpid()}", workers=1
    )
    async with contextlib.AsyncExitStack() as stack:
        keys = KeySet.from_settings(settings)
        url = settings.database_url
        if url is None:
            embedded = EmbeddedPostgres(settings.data_dir)
            url = embedded.start()
            stack.callback(embedded.stop)
        try:
            pool = await create_pool(url, min_size=1, max_size=2)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise ConfigError(f"cannot connect to PostgreSQL at {redact(url)}: {exc}") from None
        stack.push_async_callback(pool.close)
        async with pool.acquire() as conn:
            await migrate(conn)
        bus = make_bus(settings)
        await bus.start()
        stack.push_async_callback(bus.close)
        control = Control(bus)
        parts = build_auth(
            settings,
            pool=pool,
            keys=keys,
            control=control,
            metrics=Metrics(),
            throttle=LoginThrottle(1, 1, 1.0),
            revoke_wait=max(settings.revoke_wait, 1.0),
            stack=stack,
        )
        users, devices, auth = parts.users, parts.devices, parts.auth
        passwords = parts.passwords
        yield Admin(
            settings=settings,
            control=control,
            users=users,
            devices=devices,
            auth=auth,
            accounts=AccountService(users, passwords, auth, control),
            # Creating a network or a membership reads no cache: the registry stays unloaded.
            networks=Networks(
                devices=devices,
                users=users,
                control=control,
                access=Access(Registry(devices, users, control)),
            ),
        )
