"""The client's one WebSocket: requests matched by requestId, pushes routed by subscriptionId, and
the supervisor that reconnects with backoff, re-authenticates, resubscribes and renews the token."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

from gateway.client.credentials import Credentials, LoginUnavailable
from gateway.client.errors import (
    AuthenticationError,
    ClientClosed,
    GatewayClientError,
    GatewayUnavailable,
    OutcomeUnknown,
    RequestFailed,
    TokenExpired,
    TokenRevoked,
)
from gateway.client.renewal import Renewal
from gateway.client.subscription import Subscription
from gateway.client.wire import EXPIRED, INVALID, REVOKED, SAFE, Dropped, NoReply, Pending

log = logging.getLogger("gateway.client")


class Connection:
    """Owns the socket and its life; every request and subscription goes through it."""

    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        http: aiohttp.ClientSession,
        *,
        request_timeout: float,
        backoff_base: float,
        backoff_cap: float,
        heartbeat: float,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.ws_url = "ws" + self.base_url.removeprefix("http") + "/v1/ws"
        self.credentials = credentials
        self._renewal = Renewal(credentials, http, self.base_url)
        self.request_timeout = request_timeout
        self.generation = 0
        self.reconnects = 0
        self._http = http
        self._backoff = (backoff_base, backoff_cap)
        self._heartbeat = heartbeat
        self._ids = itertools.count(1)
        self._pending: dict[int, Pending] = {}
        self._subscriptions: dict[Subscription, None] = {}
        self._by_id: dict[int, Subscription] = {}
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ready = asyncio.Event()
        self._stopped = asyncio.Event()
        self._fatal: GatewayClientError | None = None
        self._supervisor: asyncio.Task[None] | None = None

    # -- life ------------------------------------------------------------------------------

    async def start(self, within: float) -> None:
        """Connect and authenticate; a fatal error (bad credentials) is raised here."""
        self._supervisor = asyncio.create_task(self._run(), name="gateway-client")
        await self._until_ready(time.monotonic() + within)

    async def close(self) -> None:
        self._stop(ClientClosed("the client was closed"))
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        if self._ws is not None:
            await self._ws.close()

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    def _stop(self, error: GatewayClientError) -> None:
        if self._fatal is None:
            self._fatal = error
        self._ready.clear()
        self._stopped.set()
        for subscription in list(self._subscriptions):
            subscription.fail(self._fatal)
        self._subscriptions.clear()

    async def _until_ready(self, deadline: float) -> aiohttp.ClientWebSocketResponse:
        while not self._ready.is_set():
            if self._fatal is not None:
                raise self._fatal
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GatewayUnavailable(f"no connection to {self.ws_url} in time")
            ready = asyncio.ensure_future(self._ready.wait())
            stopped = asyncio.ensure_future(self._stopped.wait())
            try:
                await asyncio.wait(
                    {ready, stopped}, timeout=remaining, return_when="FIRST_COMPLETED"
                )
            finally:
                ready.cancel()
                stopped.cancel()
        if self._fatal is not None:
            raise self._fatal
        assert self._ws is not None
        return self._ws

    # -- requests --------------------------------------------------------------------------

    async def request(
        self,
        action: str,
        fields: dict[str, Any],
        *,
        within: float | None = None,
        on_success: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Send once connected and return the reply's payload. A request in :data:`SAFE` is
        resent after a reconnect; any other raises :class:`OutcomeUnknown` when its reply is
        lost."""
        deadline = time.monotonic() + (within or self.request_timeout)
        while True:
            ws = await self._until_ready(deadline)
            try:
                return await self._call(ws, action, fields, deadline - time.monotonic(), on_success)
            except Dropped as exc:
                if exc.sent and action not in SAFE:
                    raise OutcomeUnknown(
                        action, "the connection was lost before the reply"
                    ) from None
            except NoReply:
                if action in SAFE:
                    raise GatewayUnavailable(f"{action}: no reply in time") from None
                raise OutcomeUnknown(action, "no reply came in time") from None

    async def _call(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        action: str,
        fields: dict[str, Any],
        within: float | None = None,
        on_success: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = Pending(action, future, on_success)
        try:
            if ws.closed:
                raise Dropped(sent=False)
            try:
                await ws.send_bytes(
                    orjson.dumps({"action": action, "requestId": request_id, **fields})
                )
            except (ConnectionError, aiohttp.ClientError, RuntimeError):
                raise Dropped(sent=False) from None
            try:
                body = await asyncio.wait_for(
                    future, max(0.0, self.request_timeout if within is None else within)
                )
            except TimeoutError:
                raise NoReply from None
        finally:
            self._pending.pop(request_id, None)
        if body.get("status") != "success":
            raise RequestFailed(action, int(body.get("code") or 0), str(body.get("error") or ""))
        return {k: v for k, v in body.items() if k not in ("action", "requestId", "status")}

    # -- subscriptions ---------------------------------------------------------------------

    async def add(self, subscription: Subscription) -> None:
        """Subscribe now when connected (else at the next connection) and wait for the answer."""
        if self._fatal is not None:
            raise self._fatal
        self._subscriptions[subscription] = None
        ws = self._ws
        if self._ready.is_set() and ws is not None:
            try:
                await self._subscribe(ws, subscription)
            except NoReply:
                await ws.close()  # the reconnect subscribes it again, after a backoff
            except Dropped:
                pass
        deadline = time.monotonic() + self.request_timeout
        while not subscription.settled.is_set():
            await self._until_ready(deadline)
            if time.monotonic() > deadline:
                raise GatewayUnavailable("the subscription is not in place yet; it will be")
            settled = asyncio.ensure_future(subscription.settled.wait())
            dropped = asyncio.ensure_future(self._stopped.wait())
            try:
                await asyncio.wait({settled, dropped}, timeout=0.5, return_when="FIRST_COMPLETED")
            finally:
                settled.cancel()
                dropped.cancel()

    async def remove(self, subscription: Subscription) -> None:
        self._subscriptions.pop(subscription, None)
        subscription_id = subscription.subscription_id
        if subscription_id is None or self._by_id.pop(subscription_id, None) is None:
            return
        if self._ws is not None and self._ready.is_set():
            with contextlib.suppress(Dropped, NoReply, RequestFailed):
                await self._call(
                    self._ws,
                    f"{subscription.kind}/unsubscribe",
                    {"subscriptionId": subscription_id},
                )

    async def _subscribe(
        self, ws: aiohttp.ClientWebSocketResponse, subscription: Subscription
    ) -> None:
        generation = self.generation

        def bind(body: dict[str, Any]) -> None:
            # Runs in the reader, before it reads the first push of this subscription.
            subscription_id = body.get("subscriptionId")
            if isinstance(subscription_id, int) and subscription in self._subscriptions:
                self._by_id[subscription_id] = subscription
                subscription.bound(generation, subscription_id)

        try:
            await self._call(
                ws,
                f"{subscription.kind}/subscribe",
                subscription.subscribe_fields(),
                on_success=bind,
            )
        except RequestFailed as exc:
            if exc.code == 429 or exc.code >= 500:
                # The gateway cannot replay now (its database is down, it is busy): not the
                # subscription's fault; the connection is re-made after a backoff.
                raise NoReply from exc
            self._subscriptions.pop(subscription, None)
            subscription.fail(exc)

    # -- the socket ------------------------------------------------------------------------

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> int | None:
        try:
            async for message in ws:
                if message.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    break
                try:
                    body = orjson.loads(message.data)
                except orjson.JSONDecodeError:
                    log.warning("ignored a frame that is not JSON")
                    continue
                if isinstance(body, dict):
                    self._on_frame(body)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.info("gateway socket failed: %r", exc)
        finally:
            for pending in self._pending.values():
                if not pending.future.done():
                    pending.future.set_exception(Dropped(sent=True))
        return ws.close_code

    def _on_frame(self, body: dict[str, Any]) -> None:
        if "status" in body:
            request_id = body.get("requestId")
            pending = self._pending.get(request_id) if isinstance(request_id, int) else None
            if pending is None:
                if body.get("status") == "error":
                    log.warning("gateway error without a request: %s", body.get("error"))
                return
            if pending.on_success is not None and body.get("status") == "success":
                pending.on_success(body)
            if not pending.future.done():
                pending.future.set_result(body)
            return
        subscription_id = body.get("subscriptionId")
        subscription = (
            self._by_id.get(subscription_id) if isinstance(subscription_id, int) else None
        )
        action = body.get("action")
        item = body.get("notification", body.get("command"))
        if subscription is not None and isinstance(action, str) and isinstance(item, dict):
            subscription.deliver(action, item)

    async def _run(self) -> None:
        """Connect, set up, serve until the socket ends; then back off (full jitter, capped)
        and start again, unless the end is final (revoked, closed, credentials refused)."""
        attempt = 0
        base, cap = self._backoff
        try:
            while True:
                try:
                    ws = await self._http.ws_connect(
                        self.ws_url,
                        heartbeat=self._heartbeat,
                        timeout=aiohttp.ClientWSTimeout(ws_close=10.0),
                    )
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    log.info("gateway unreachable (%s); retrying", exc)
                else:
                    if await self._serve(ws):
                        attempt = 0
                    if self._fatal is not None:
                        return
                    self.reconnects += 1
                await asyncio.sleep(random.uniform(0, min(cap, base * 2**attempt)))  # noqa: S311
                attempt += 1
        except Exception as exc:
            log.exception("gateway client failed")
            self._stop(GatewayClientError(f"the client failed: {exc!r}"))

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> bool:
        """One connection's life; True when it got as far as being ready."""
        self._ws = ws
        self.generation += 1
        self._by_id.clear()
        reader = asyncio.create_task(self._read(ws), name="gateway-client-reader")
        refresher: asyncio.Task[None] | None = None
        ready = False
        try:
            await self._set_up(ws)
        except (Dropped, NoReply, LoginUnavailable, RequestFailed) as exc:
            log.info("gateway connection set-up failed (%r); reconnecting", exc)
            await ws.close()
        except AuthenticationError as exc:
            self._stop(exc)
            await ws.close()
        else:
            ready = True
            self._ready.set()
            refresher = asyncio.create_task(self._refresh(ws), name="gateway-client-refresh")
        code = await reader
        self._ready.clear()
        if refresher is not None:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
        if code == REVOKED:
            self._stop(TokenRevoked("the gateway closed the socket: token revoked (4003)"))
        elif code in (EXPIRED, INVALID) and not self._renewal.can_renew:
            self._stop(TokenExpired(f"the gateway closed the socket ({code}); no way to renew"))
        return ready

    async def _set_up(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        await self._renewal.authenticate(functools.partial(self._call, ws))
        generation = self.generation
        while todo := [s for s in self._subscriptions if s.generation != generation]:
            for subscription in todo:
                await self._subscribe(ws, subscription)

    async def _refresh(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Renew the access token before it expires, for as long as this socket lives."""
        try:
            await self._renewal.keep_fresh(functools.partial(self._call, ws))
        except (Dropped, NoReply, LoginUnavailable, RequestFailed) as exc:
            log.info("token renewal failed (%r); the reconnect will retry", exc)
            await ws.close()
        except AuthenticationError as exc:
            self._stop(exc)
            await ws.close()
