"""Wires settings, store, bus, services and routes into an aiohttp application; owns start-up
and shutdown order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
from aiohttp import web

from gateway.api import auth as _auth_routes  # noqa: F401 - registers routes
from gateway.api import devices as _device_routes  # noqa: F401 - registers routes
from gateway.api import meta as _meta_routes  # noqa: F401 - registers routes
from gateway.api import sessions as _session_routes  # noqa: F401 - registers routes
from gateway.api import users as _user_routes  # noqa: F401 - registers routes
from gateway.api.routing import ROUTES, SERVICES_KEY, error_middleware
from gateway.auth.accounts import AccountService
from gateway.auth.passwords import Passwords
from gateway.auth.revocation import RevocationView
from gateway.auth.revoker import Revoker
from gateway.auth.service import AuthService
from gateway.auth.throttle import LoginThrottle
from gateway.auth.tokens import KeySet, TokenCodec
from gateway.bus.base import Bus
from gateway.bus.control import Control
from gateway.bus.memory import MemoryBus
from gateway.config import ConfigError, Settings, redact
from gateway.realtime.actions import Dispatcher
from gateway.realtime.endpoint import DISPATCHER_KEY
from gateway.realtime.wiring import install_routes, start_realtime
from gateway.services import Services
from gateway.store.db import create_pool
from gateway.store.devices import DeviceStore
from gateway.store.embedded import EmbeddedPostgres
from gateway.store.migrations import migrate
from gateway.store.sessions import RevocationStore, SessionStore
from gateway.store.users import UserStore

log = logging.getLogger("gateway")

BOOTSTRAP_ADMIN_EMAIL = "admin@localhost"


def make_bus(settings: Settings) -> Bus:
    if settings.redis_url:
        from gateway.bus.redis import RedisBus

        try:
            return RedisBus(settings.instance_id, settings.redis_url, prefix=settings.redis_prefix)
        except ValueError as exc:
            raise ConfigError(f"GATEWAY_REDIS_URL: {exc}") from None
    return MemoryBus(settings.instance_id)


async def _bootstrap_admin(settings: Settings, accounts: AccountService) -> None:
    """Make sure there is a way to log in: the configured admin, or (embedded, first start)
    a generated one whose password is kept in the data dir."""
    if settings.admin_email and settings.admin_password:
        if await accounts.ensure_admin(settings.admin_email, settings.admin_password):
            log.info("created admin %s", settings.admin_email)
        return
    if not settings.embedded_database:
        return
    path = bootstrap_password_file(settings)
    if path.exists():
        return
    if await accounts.users.by_email(BOOTSTRAP_ADMIN_EMAIL) is not None:
        return
    password = secrets.token_urlsafe(12)
    await accounts.ensure_admin(BOOTSTRAP_ADMIN_EMAIL, password)
    path.write_text(password + "\n")
    path.chmod(0o600)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=settings.max_body_bytes)
    ROUTES.install(app)
    install_routes(app)
    app.cleanup_ctx.append(lambda app: _lifespan(app, settings))
    return app


async def _lifespan(app: web.Application, settings: Settings) -> AsyncIterator[None]:
    async with contextlib.AsyncExitStack() as stack:
        # Keys first: a bad key file should fail before anything is started.
        keys = KeySet.from_settings(settings)
        codec = TokenCodec(keys, settings.jwt_issuer, settings.jwt_leeway)
        embedded = None
        database_url = settings.database_url
        if database_url is None:
            embedded = EmbeddedPostgres(settings.data_dir)
            database_url = await asyncio.to_thread(embedded.start)
            stack.callback(embedded.stop)

        try:
            pool = await create_pool(database_url)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise ConfigError(
                f"cannot connect to PostgreSQL at {redact(database_url)}: {exc}"
            ) from None
        stack.push_async_callback(pool.close)
        async with pool.acquire() as conn:
            await migrate(conn)

        bus = make_bus(settings)
        await bus.start()
        stack.push_async_callback(bus.close)
        control = Control(bus)

        users = UserStore(pool)
        sessions = SessionStore(pool)
        devices = DeviceStore(pool)
        view = RevocationView()
        revoker = Revoker(
            RevocationStore(pool),
            view,
            control,
            wait=settings.revoke_wait,
            reconcile_interval=settings.reconcile_interval,
        )
        await revoker.reconcile()
        passwords = Passwords(
            settings.argon2_time_cost,
            settings.argon2_memory_kib,
            settings.argon2_parallelism,
            settings.hash_workers,
        )
        stack.callback(passwords.close)
        auth = AuthService(
            users=users,
            sessions=sessions,
            devices=devices,
            codec=codec,
            passwords=passwords,
            throttle=LoginThrottle(
                settings.login_failures_per_account,
                settings.login_failures_per_address,
                settings.login_failure_window,
            ),
            view=view,
            revoker=revoker,
            access_ttl=settings.access_ttl,
            refresh_ttl=settings.refresh_ttl,
        )
        accounts = AccountService(users, passwords, auth, control)
        await _bootstrap_admin(settings, accounts)

        realtime = await start_realtime(app, settings, pool, control, auth, devices, users, stack)

        services = app[SERVICES_KEY] = Services(
            settings=settings,
            pool=pool,
            bus=bus,
            control=control,
            keys=keys,
            users=users,
            devices=devices,
            view=view,
            revoker=revoker,
            auth=auth,
            accounts=accounts,
            registry=realtime.registry,
            hub=realtime.hub,
            device_service=realtime.device_service,
        )
        app[DISPATCHER_KEY] = Dispatcher(services)
        tasks = [
            asyncio.create_task(revoker.run(), name="revocation-reconcile"),
            asyncio.create_task(_maintenance(sessions, revoker, settings), name="maintenance"),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _maintenance(sessions: SessionStore, revoker: Revoker, settings: Settings) -> None:
    """Hourly: forget consumed or expired refresh tokens and expired revocations."""
    while True:
        await asyncio.sleep(3600)
        try:
            await sessions.purge_expired()
            await revoker.store.purge_expired()
        except (OSError, TimeoutError) as exc:
            log.warning("maintenance failed, will retry: %s", exc)


def bootstrap_password_file(settings: Settings) -> Path:
    return settings.data_dir / "admin_password"
