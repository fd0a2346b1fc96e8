"""The command line: ``gateway serve``, ``gateway migrate``, ``gateway config``."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import wait
from typing import NoReturn

from gateway import __version__
from gateway.config import (
    ConfigError,
    Settings,
    add_arguments,
    describe,
    load_settings,
    overrides_from_args,
)


class _Parser(argparse.ArgumentParser):
    """Usage mistakes as one line (the full usage is one --help away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gateway", description="IoT authentication and real-time gateway")
    parser.add_argument("--version", action="version", version=f"gateway {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="run the gateway",
        description="Run the gateway. Each flag may instead be set by the variable shown.",
    )
    add_arguments(serve)
    migrate = commands.add_parser("migrate", help="apply database migrations and exit")
    add_arguments(migrate)
    commands.add_parser("config", help="print the configuration table (Markdown)")
    from gateway.admin.commands import add_commands

    add_commands(commands)
    return parser


def _configure_logging(settings: Settings) -> None:
    from gateway import logs

    logs.configure(
        level=settings.log_level,
        fmt=settings.log_format,
        instance=settings.instance_id,
        secrets=(
            settings.jwt_secret,
            settings.jwt_previous_secret,
            settings.admin_password,
            logs.url_password(settings.database_url),
            logs.url_password(settings.redis_url),
        ),
    )


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _announce(settings: Settings) -> None:
    from gateway.app import BOOTSTRAP_ADMIN_EMAIL, bootstrap_password_file

    scheme = "https" if settings.tls_cert_file else "http"
    url = f"{scheme}://{settings.host}:{settings.port}"
    print(f"gateway {__version__} listening on {url} (instance {settings.instance_id})", flush=True)
    if settings.admin_email:
        email, password_hint = settings.admin_email, "$GATEWAY_ADMIN_PASSWORD"
    elif bootstrap_password_file(settings).exists():
        email = BOOTSTRAP_ADMIN_EMAIL
        password_hint = f"$(cat {bootstrap_password_file(settings)})"
    else:
        print(
            "No admin configured: set GATEWAY_ADMIN_EMAIL and GATEWAY_ADMIN_PASSWORD.", flush=True
        )
        return
    print(
        "Log in:\n"
        f"  curl -s -X POST {url}/v1/auth/login -H 'Content-Type: application/json' \\\n"
        f'    -d \'{{"email": "{email}", "password": "\'"{password_hint}"\'"}}\'\n'
        f"API description: {url}/v1/openapi.json",
        flush=True,
    )


def _settle_garbage_collector() -> None:
    """Move everything start-up made out of the collector's reach, and collect the young
    generation less often: full collections over a heap of long-lived objects were the tail
    of the latency (bench/README.md)."""
    gc.collect()
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(10_000, second, third)


def _stop_once() -> Callable[[], None]:
    """The first SIGTERM/SIGINT stops the server (aiohttp's GracefulExit); a later one is only
    logged. aiohttp's own handler raises again, out of the shutdown under way: that cut short
    the bounded writing of acknowledged messages and its report of what was lost."""
    from aiohttp import web

    stopping = False

    def stop() -> None:
        nonlocal stopping
        if stopping:
            logging.getLogger("gateway").warning(
                "already stopping: acknowledged messages are still being written (bounded)"
            )
            return
        stopping = True
        raise web.GracefulExit()

    return stop


EXIT_LOST = 3
"""Exit status of a stop that could not write everything it had acknowledged (the log says how
much): a supervisor or an alert can tell it from a clean stop (0) and a refused start (1, 2)."""


def serve(settings: Settings, reuse_port: bool = False) -> int:
    from aiohttp import web

    from gateway.app import WIRING_KEY, create_app

    _configure_logging(settings)
    context = None
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        from gateway import tls

        context = tls.server_context(settings.tls_cert_file, settings.tls_key_file)
        cert_file, key_file = settings.tls_cert_file, settings.tls_key_file
    app = create_app(settings)

    async def announce(_app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        if context is not None:
            loop.add_signal_handler(signal.SIGHUP, tls.reload, context, cert_file, key_file)
        stop = _stop_once()
        for signum in (signal.SIGTERM, signal.SIGINT):  # over aiohttp's, which stop every time
            loop.add_signal_handler(signum, stop)
        _settle_garbage_collector()

    app.on_startup.append(announce)
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        ssl_context=context,
        reuse_port=reuse_port or None,
        print=lambda *_: _announce(settings),  # once every socket is bound, not before
        access_log=None,
        shutdown_timeout=10,
        loop=_new_loop(),
    )
    wiring = app.get(WIRING_KEY)
    lost = wiring is not None and wiring.realtime.messages.messages.lost_at_close > 0
    return EXIT_LOST if lost else 0


def _worker(settings: Settings, index: int) -> None:
    """Worker ``index`` of ``--workers N``; its metrics are its own, on GATEWAY_METRICS_PORT +
    index (one shared port would answer for whichever worker the kernel picked)."""
    settings = settings.with_overrides(
        workers=1,
        instance_id=f"{settings.instance_id}-w{index}",
        metrics_port=None if settings.metrics_port is None else settings.metrics_port + index,
    )
    sys.exit(_refused_in_one_line(f"gateway: worker {index}", lambda: serve(settings, True)))


WORKER_RESTART_AFTER = 5.0
"""A worker that ends (not stopped) after running this long is started again; one that ends
sooner failed at start-up: the others are stopped and the parent exits non-zero, so a bad
setting neither loops nor leaves N-1 workers serving as if all were well."""

_workers_log = logging.getLogger("gateway.workers")


def _ended(code: int) -> str:
    return f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"


def serve_workers(settings: Settings) -> int:
    """N processes on one port (SO_REUSEPORT), joined through Redis; the parent supervises."""
    if not hasattr(socket, "SO_REUSEPORT"):
        raise ConfigError("--workers > 1 needs SO_REUSEPORT, which this platform lacks")
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        from gateway import tls

        tls.server_context(settings.tls_cert_file, settings.tls_key_file)  # fail here, once
    _configure_logging(settings)
    context = multiprocessing.get_context("spawn")
    started: dict[int, float] = {}

    def start(index: int) -> multiprocessing.process.BaseProcess:
        worker = context.Process(
            target=_worker, args=(settings, index), name=f"gateway-worker-{index}"
        )
        worker.start()
        started[index] = time.monotonic()
        return worker

    workers = {index: start(index) for index in range(settings.workers)}
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = stopping or signum != signal.SIGHUP
        for worker in workers.values():
            if worker.pid is not None and worker.is_alive():
                os.kill(worker.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGHUP, forward)
    codes: dict[int, int] = {}
    failed: int | None = None
    while running := {i: w for i, w in workers.items() if i not in codes}:
        wait([worker.sentinel for worker in running.values()])
        for index, worker in running.items():
            if worker.is_alive():
                continue
            worker.join()
            code = worker.exitcode or 0
            ran = time.monotonic() - started[index]
            if stopping:
                codes[index] = code
            elif ran < WORKER_RESTART_AFTER:
                codes[index] = code
                failed = code if code > 0 else 1
                _workers_log.error(
                    "worker %d (pid %s) %s %.1f s after it started; stopping the others",
                    *(index, worker.pid, _ended(code), ran),
                )
                forward(signal.SIGTERM, None)
            else:
                _workers_log.error(
                    "worker %d (pid %s) %s; starting it again", index, worker.pid, _ended(code)
                )
                workers[index] = start(index)
    return max(codes.values()) if failed is None else max(failed, *codes.values())


async def _migrate(settings: Settings) -> list[str]:
    import asyncpg

    from gateway.config import redact
    from gateway.store.db import create_pool
    from gateway.store.embedded import EmbeddedPostgres
    from gateway.store.migrations import migrate

    embedded = None
    url = settings.database_url
    if url is None:
        embedded = EmbeddedPostgres(settings.data_dir)
        url = embedded.start()
    try:
        pool = await create_pool(url, max_size=1)
        try:
            try:  # the pool connects on first use: an unreachable server is one line here
                await pool.execute("SELECT 1")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                raise ConfigError(f"cannot connect to PostgreSQL at {redact(url)}: {exc}") from None
            async with pool.acquire() as conn:
                return await migrate(conn)
        finally:
            await pool.close()
    finally:
        if embedded is not None:
            embedded.stop()


def _admin(settings: Settings, args: argparse.Namespace) -> int:
    """An admin command: its result on stdout; a refusal as one line on stderr, exit 1."""
    from gateway.admin.commands import run
    from gateway.errors import GatewayError

    _configure_logging(settings.with_overrides(log_level="WARNING"))
    try:
        asyncio.run(run(settings, args))
    except GatewayError as exc:
        print(f"gateway: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("gateway: interrupted", file=sys.stderr)
        return 130
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - one line for the operator, never a traceback
        print(f"gateway: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        # Named, never echoed: a value typed by mistake may be a password.
        flags = " ".join(extra for extra in extras if extra.startswith("-"))
        parser.error(f"unrecognized arguments: {flags or 'extra values'}")
    if args.command == "config":
        print(describe())
        return 0
    return _refused_in_one_line("gateway", lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    settings = load_settings(overrides=overrides_from_args(args))
    if getattr(args, "admin", None) is not None:
        return _admin(settings, args)
    if args.command == "migrate":
        _configure_logging(settings)
        applied = asyncio.run(_migrate(settings))
        print("applied: " + ", ".join(applied) if applied else "database is up to date")
        return 0
    if settings.workers > 1:
        return serve_workers(settings)
    return serve(settings)


def _refused_in_one_line(name: str, run: Callable[[], int]) -> int:
    """``run()``'s exit code; a setting or a resource it cannot use is one line on stderr
    (exit 2 or 1), never a traceback."""
    try:
        return run()
    except ConfigError as exc:
        print(f"{name}: configuration error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{name}: {exc.strerror or exc}", file=sys.stderr)
        return 1
