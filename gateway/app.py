"""The wiring: builds the store, bus, use cases and both edges into one aiohttp application.

It owns the start-up and shutdown order, and it alone knows every part: each edge gets only
what it uses (``Rest``, the realtime ``Context``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from aiohttp import web

from gateway import dhwiring, supervise
from gateway.api import auth as _auth_routes  # noqa: F401 - registers routes
from gateway.api import devices as _device_routes  # noqa: F401 - registers routes
from gateway.api import meta as _meta_routes  # noqa: F401 - registers routes
from gateway.api import sessions as _session_routes  # noqa: F401 - registers routes
from gateway.api import users as _user_routes  # noqa: F401 - registers routes
from gateway.api.metrics import (
    METRICS_KEY,
    METRICS_PATH,
    HttpMetrics,
    metrics_app,
    metrics_endpoint,
)
from gateway.api.routing import REST_KEY, ROUTES, Rest
from gateway.api.serverlog import ServerLog
from gateway.auth.accounts import AccountService
from gateway.auth.login import AuthService
from gateway.auth.revocation import RevocationView
from gateway.auth.revoker import Revoker
from gateway.auth.services import build_auth
from gateway.auth.throttle import LoginThrottle
from gateway.auth.tokens import KeySet
from gateway.bus.base import Bus
from gateway.bus.control import Control
from gateway.bus.counts import RedisCounts
from gateway.bus.handover import Handover
from gateway.bus.memory import MemoryBus
from gateway.config import ConfigError, Settings, redact
from gateway.console import install_routes as install_console
from gateway.devices.access import Access
from gateway.devices.devices import Devices
from gateway.devices.messages import Messages
from gateway.devices.networks import Networks
from gateway.devices.registry import Registry
from gateway.http import OriginPolicy, error_middleware
from gateway.metrics import Metrics
from gateway.realtime import endpoint
from gateway.realtime.dispatcher import DISPATCHER_KEY, Context, Dispatcher
from gateway.realtime.hub import Hub
from gateway.store.db import Pool, create_pool
from gateway.store.embedded import EmbeddedPostgres
from gateway.store.health import DatabaseHealth
from gateway.store.messages import MessageStore
from gateway.store.migrations import migrate
from gateway.store.sessions import SessionStore

log = logging.getLogger("gateway")

BOOTSTRAP_ADMIN_EMAIL = "admin@localhost"


@dataclass(slots=True)
class Wiring:
    """Everything start-up built, for whoever looks inside a running app (tests, tools)."""

    settings: Settings
    pool: Pool
    bus: Bus
    control: Control
    keys: KeySet
    view: RevocationView
    revoker: Revoker
    auth: AuthService
    registry: Registry
    hub: Hub
    rest: Rest
    realtime: Context


WIRING_KEY: web.AppKey[Wiring] = web.AppKey("wiring", Wiring)


HEALTH_KEY: web.AppKey[DatabaseHealth] = web.AppKey("health", DatabaseHealth)


def _outage(app: web.Application, exc: BaseException) -> bool:
    """Whether a request's unexpected error means PostgreSQL is down (see DatabaseHealth)."""
    health = app.get(HEALTH_KEY)
    return health is not None and health.failed(exc)


def make_bus(settings: Settings) -> Bus:
    if settings.redis_url:
        from gateway.bus.redis import RedisBus

        try:
            return RedisBus(settings.instance_id, settings.redis_url, prefix=settings.redis_prefix)
        except ValueError as exc:
            raise ConfigError(f"GATEWAY_REDIS_URL: {exc}") from None
    return MemoryBus(settings.instance_id)


async def _shared_counts(
    settings: Settings, stack: contextlib.AsyncExitStack
) -> RedisCounts | None:
    """Login counts shared by every instance when Redis is configured."""
    if not settings.redis_url:
        return None
    counts = RedisCounts(settings.redis_url, settings.redis_prefix)
    stack.push_async_callback(counts.close)
    return counts


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


def _pending_ids(messages: MessageStore) -> set[int]:
    return {item.id for kind in ("notification", "command") for item in messages.pending(kind)}


def create_app(settings: Settings) -> web.Application:
    metrics = Metrics()
    websocket = {endpoint.WEBSOCKET_PATH}
    middlewares = [HttpMetrics(metrics).middleware(passthrough=websocket)]
    if settings.cors_origins:
        middlewares.append(OriginPolicy(settings.cors_origins).middleware(websocket=websocket))
    middlewares.append(
        error_middleware(passthrough=websocket, outage=lambda exc: _outage(app, exc))
    )
    app = web.Application(
        middlewares=middlewares,
        client_max_size=settings.max_body_bytes,
        handler_args={"logger": ServerLog()},
    )
    app[METRICS_KEY] = metrics
    ROUTES.install(app)
    dhwiring.install(app)
    endpoint.install(app)
    install_console(app)
    if settings.metrics and settings.metrics_port is None:
        app.router.add_get(METRICS_PATH, metrics_endpoint)
    app.cleanup_ctx.append(lambda app: _lifespan(app, settings))
    return app


def _sample(metrics: Metrics, pool: Pool, bus: Bus, hub: Hub, messages: MessageStore) -> None:
    """Levels and cold counters are read at scrape time: nothing to update in between."""
    metrics.sample_gauge("gateway_ws_sessions", lambda: len(hub.sessions))
    metrics.sample_gauge("gateway_persist_pending", lambda: messages.pending_count)
    metrics.sample_gauge("gateway_persist_pending_bytes", lambda: messages.pending_bytes)
    metrics.sample_gauge("gateway_bus_connected", lambda: float(bus.healthy))
    metrics.sample_gauge("gateway_db_pool_in_use", lambda: pool.get_size() - pool.get_idle_size())
    metrics.sample_counter("gateway_persist_written", lambda: messages.written)
    metrics.sample_counter("gateway_persist_failed", lambda: messages.failed)
    metrics.sample_counter("gateway_persist_dead_lettered", lambda: messages.writer.dead_lettered)
    metrics.sample_counter("gateway_bus_reconnects", lambda: bus.reconnects)
    metrics.sample_counter("gateway_bus_skipped", lambda: bus.skipped)


async def _serve_metrics(settings: Settings, metrics: Metrics) -> web.AppRunner:
    """/metrics on GATEWAY_METRICS_PORT, same host, for a scraper kept off the API port."""
    runner = web.AppRunner(metrics_app(metrics), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.metrics_port).start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(
            f"GATEWAY_METRICS_PORT: cannot listen on {settings.host}:{settings.metrics_port}: "
            f"{exc.strerror or exc}"
        ) from None
    return runner


async def _lifespan(app: web.Application, settings: Settings) -> AsyncIterator[None]:
    async with contextlib.AsyncExitStack() as stack:
        # Keys first: a bad key file should fail before anything is started.
        keys = KeySet.from_settings(settings)
        metrics = app[METRICS_KEY]
        embedded = None
        database_url = settings.database_url
        if database_url is None:
            embedded = EmbeddedPostgres(settings.data_dir)
            database_url = await asyncio.to_thread(embedded.start)
            stack.callback(embedded.stop)

        pool = await create_pool(database_url)
        stack.push_async_callback(pool.close)
        try:  # the pool connects on first use (no floor of idle connections): use it here
            await pool.execute("SELECT 1")
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise ConfigError(
                f"cannot connect to PostgreSQL at {redact(database_url)}: {exc}"
            ) from None
        health = app[HEALTH_KEY] = DatabaseHealth(pool)
        async with pool.acquire() as conn:
            await migrate(conn)

        bus = make_bus(settings)
        await bus.start()
        stack.push_async_callback(bus.close)
        control = Control(bus)

        throttle = LoginThrottle(
            settings.login_failures_per_account,
            settings.login_failures_per_address,
            settings.login_failure_window,
            shared=await _shared_counts(settings, stack),
        )
        parts = build_auth(
            settings,
            pool=pool,
            keys=keys,
            control=control,
            metrics=metrics,
            throttle=throttle,
            revoke_wait=settings.revoke_wait,
            stack=stack,
        )
        users, sessions, devices = parts.users, parts.sessions, parts.devices
        view, revoker, passwords, auth = parts.view, parts.revoker, parts.passwords, parts.auth
        await revoker.reconcile()
        accounts = AccountService(users, passwords, auth, control)
        await _bootstrap_admin(settings, accounts)

        registry = Registry(devices, users, control)
        await registry.load()
        hub = Hub(settings, bus, control, registry, view, metrics)
        revoker.add_closer(hub.close_revoked)
        messages = MessageStore(
            pool,
            interval=settings.persist_interval,
            batch=settings.persist_batch,
            max_pending=settings.persist_max_pending,
            max_pending_bytes=settings.persist_max_pending_bytes,
            page_max_bytes=settings.history_page_max_bytes,
            health=health,
        )
        messages.start()
        stack.push_async_callback(_stop_messages, hub, messages)
        app.on_shutdown.append(lambda _app: hub.shutdown())

        access = Access(registry)
        networks = Networks(devices=devices, users=users, control=control, access=access)
        device_cases = Devices(devices=devices, registry=registry, control=control, access=access)
        handover = Handover(
            control,
            lambda: _pending_ids(messages),
            interval=settings.persist_interval,
            wait=max(1.0, 20 * settings.persist_interval),
        )
        stack.push_async_callback(handover.close)
        message_cases = Messages(
            messages=messages, access=access, publish=hub.publish, handover=handover
        )
        rest_dh, ws_dh = dhwiring.build(
            app,
            pool,
            users,
            devices,
            messages,
            access,
            auth,
            message_cases,
            settings.poll_max_waiting,
        )
        rest = app[REST_KEY] = Rest(
            settings=settings,
            pool=pool,
            health=health,
            bus=bus,
            keys=keys,
            users=users,
            auth=auth,
            accounts=accounts,
            networks=networks,
            devices=device_cases,
            sessions=hub,
            dh=rest_dh,
        )
        realtime = Context(
            settings=settings,
            auth=auth,
            view=view,
            registry=registry,
            hub=hub,
            access=access,
            devices=device_cases,
            messages=message_cases,
            outage=health.failed,
            dh=ws_dh,
        )
        app[DISPATCHER_KEY] = Dispatcher(realtime, metrics)
        _sample(metrics, pool, bus, hub, messages)
        if settings.metrics and settings.metrics_port is not None:
            stack.push_async_callback((await _serve_metrics(settings, metrics)).cleanup)
        app[WIRING_KEY] = Wiring(
            settings=settings,
            pool=pool,
            bus=bus,
            control=control,
            keys=keys,
            view=view,
            revoker=revoker,
            auth=auth,
            registry=registry,
            hub=hub,
            rest=rest,
            realtime=realtime,
        )
        loops = [
            supervise.spawn(
                "revocation-reconcile",
                revoker.reconcile_and_prune,
                every=settings.reconcile_interval,
            ),
            supervise.spawn("maintenance", _maintenance(sessions, revoker), every=3600.0),
            supervise.spawn(
                "retention",
                _retention(messages, settings),
                every=min(3600.0, settings.retention),
                first_delay=0.0,
            ),
            supervise.spawn(
                "registry-refresh", registry.resync, every=settings.reconcile_interval, backoff=0.5
            ),
        ]
        try:
            yield
        finally:
            await supervise.stop(loops)


def _maintenance(sessions: SessionStore, revoker: Revoker) -> supervise.Step:
    """Hourly: forget consumed or expired refresh tokens and expired revocations."""

    async def step() -> None:
        await sessions.purge_expired()
        await revoker.store.purge_expired()

    return step


async def _stop_messages(hub: Hub, messages: MessageStore) -> None:
    """Sessions first (their last frames are written), then every acknowledged message."""
    await hub.shutdown()
    await messages.close()


_HORIZON = 2 * 86400.0
"""Rows stamped further ahead than this (and than the retention) are purged: the edge accepts
client timestamps at most a day ahead, so only rows from before that limit can be there."""


def _retention(messages: MessageStore, settings: Settings) -> supervise.Step:
    async def step() -> None:
        now = time.time()
        await messages.purge(now - settings.retention, now + max(settings.retention, _HORIZON))

    return step


def bootstrap_password_file(settings: Settings) -> Path:
    return settings.data_dir / "admin_password"
