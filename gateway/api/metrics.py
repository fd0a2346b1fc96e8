"""GET /metrics (Prometheus text format) and the middleware that counts and times HTTP requests.

The WebSocket upgrade is not an HTTP request in this sense (it lasts as long as the session):
its sessions, messages and closes have families of their own.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Collection

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.http import Endpoint
from gateway.metrics import CONTENT_TYPE, Child, Metrics

METRICS_KEY: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)
METRICS_PATH = "/metrics"

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _route(request: web.Request) -> str:
    """The route's template (``/v1/users/{id}``), never the raw path: label values stay few."""
    resource = request.match_info.route.resource
    return "unmatched" if resource is None else resource.canonical


class HttpMetrics:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._counted: dict[tuple[str, str, int], Child] = {}
        self._timed: dict[tuple[str, str], Child] = {}

    def middleware(self, passthrough: Collection[str] = ()) -> Middleware:
        """Counts every request but those to ``passthrough`` paths (WebSocket upgrades, handed
        on unawaited like the error middleware does)."""
        skipped = frozenset(passthrough)

        @web.middleware
        def count_middleware(
            request: web.Request, handler: Endpoint
        ) -> Awaitable[web.StreamResponse]:
            if request.path in skipped:
                return handler(request)
            return self._answer(request, handler)

        return count_middleware

    async def _answer(self, request: web.Request, handler: Endpoint) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            self._observe(request, status, time.perf_counter() - started)

    def _observe(self, request: web.Request, status: int, seconds: float) -> None:
        method = request.method if request.method in _METHODS else "OTHER"
        route = _route(request)
        key = (method, route, status)
        counter = self._counted.get(key)
        if counter is None:
            counter = self._counted[key] = self.metrics.http_requests.labels(
                method, route, str(status)
            )
        counter.inc()
        timer = self._timed.get((method, route))
        if timer is None:
            timer = self._timed[(method, route)] = self.metrics.http_duration.labels(method, route)
        timer.observe(seconds)


async def metrics_endpoint(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[METRICS_KEY].exposition(), headers={"Content-Type": CONTENT_TYPE}
    )


def metrics_app(metrics: Metrics) -> web.Application:
    """The application served on GATEWAY_METRICS_PORT: /metrics and nothing else."""
    app = web.Application()
    app[METRICS_KEY] = metrics
    app.router.add_get(METRICS_PATH, metrics_endpoint)
    return app
