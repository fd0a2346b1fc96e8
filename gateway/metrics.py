"""Prometheus families of one gateway instance, in a registry of its own, cheap to update.

The hot path (a WebSocket message, a push, a close) only increments a ``Tally`` whose labels were
resolved once, here: a plain integer in a slot, about a tenth of what a prometheus-client child
costs (that one takes a lock and checks its arguments on every ``inc``). Levels (sessions,
pending writes, pool use, bus state) and counters that other layers keep as plain integers are
read at scrape time, so they cost nothing in between. Everything runs on the event loop's
thread, which is what makes an unlocked integer enough.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

DENIED_REASONS = (
    "unauthenticated",
    "token_expired",
    "token_revoked",
    "forbidden",
    "rate_limited",
    "login_throttled",
)
LOGIN_OUTCOMES = ("success", "invalid", "disabled", "throttled")
PUSH_KINDS = ("notification", "command", "command_update")

_CLOSE_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_HTTP_SECONDS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

Child = Any
"""A labelled child of a prometheus-client family (it does not type them apart)."""


class Tally:
    """One labelled counter value, bound once and incremented on the hot path."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self, amount: int = 1) -> None:
        self.value += amount


class Tallies:
    """A counter family whose children are ``Tally`` cells, read when Prometheus scrapes."""

    def __init__(self, name: str, text: str, label: str) -> None:
        self.name = name
        self.text = text
        self.label = label
        self.children: dict[str, Tally] = {}

    def labels(self, value: str) -> Tally:
        child = self.children.get(value)
        if child is None:
            child = self.children[value] = Tally()
        return child

    def collect(self) -> Metric:
        family = CounterMetricFamily(self.name, self.text, labels=[self.label])
        for value, child in self.children.items():
            family.add_metric([value], child.value)
        return family


class _Sampled(Collector):
    """Families whose values are read when Prometheus scrapes."""

    def __init__(self) -> None:
        self.gauges: dict[str, tuple[str, Callable[[], float]]] = {}
        self.counters: dict[str, tuple[str, Callable[[], float]]] = {}
        self.tallies: list[Tallies] = []

    def collect(self) -> Iterator[Metric]:
        for tallies in self.tallies:
            yield tallies.collect()
        for name, (text, read) in self.gauges.items():
            yield GaugeMetricFamily(name, text, value=read())
        for name, (text, read) in self.counters.items():
            yield CounterMetricFamily(name, text, value=read())

    def describe(self) -> Iterable[Metric]:
        return ()


class Metrics:
    """Every family of one instance. Sampled values start at zero until ``sample_*`` binds
    them to what the wired components keep."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self._sampled = _Sampled()
        registry.register(self._sampled)
        self.ws_messages = self._tallies(
            "gateway_ws_messages", "WebSocket requests received, by action", "action"
        )
        self.ws_pushes = self._tallies(
            "gateway_ws_pushes", "Pushes sent to WebSocket subscribers, by kind", "kind"
        )
        self.ws_denied = self._tallies(
            "gateway_ws_denied", "WebSocket 401/403/429 error replies, by reason", "reason"
        )
        self.ws_closed = self._tallies(
            "gateway_ws_closed", "WebSocket sessions ended, by close code", "code"
        )
        self.revocations = Counter(
            "gateway_revocations",
            "Revocations recorded by this instance, by reason",
            ["reason"],
            registry=registry,
        )
        self.revocation_close_seconds = Histogram(
            "gateway_revocation_close_seconds",
            "From a revocation being recorded (any instance) to this instance writing the 4003 "
            "close frame of a session it covers",
            buckets=_CLOSE_SECONDS,
            registry=registry,
        )
        self.logins = self._tallies(
            "gateway_logins", "Password logins (REST and WebSocket), by outcome", "outcome"
        )
        self.http_requests = Counter(
            "gateway_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=registry,
        )
        self.http_duration = Histogram(
            "gateway_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["method", "route"],
            buckets=_HTTP_SECONDS,
            registry=registry,
        )
        for name, text in (
            ("gateway_ws_sessions", "Live WebSocket sessions on this instance"),
            ("gateway_persist_pending", "Notifications and commands acknowledged, not yet written"),
            (
                "gateway_persist_pending_bytes",
                "Bytes of payload (as JSON) of the messages acknowledged, not yet written",
            ),
            (
                "gateway_bus_connected",
                "1 while the bus transport is connected (always 1 in-process)",
            ),
            ("gateway_db_pool_in_use", "PostgreSQL connections in use"),
        ):
            self._sampled.gauges[name] = (text, _zero)
        for name, text in (
            ("gateway_persist_written", "Notifications and commands written to PostgreSQL"),
            ("gateway_persist_failed", "Batch writes to PostgreSQL that failed (and are retried)"),
            ("gateway_persist_dead_lettered", "Rows PostgreSQL refused, kept in dead_letters"),
            ("gateway_bus_reconnects", "Times the bus transport reconnected after a loss"),
            ("gateway_bus_skipped", "Messages not published: no other instance listens"),
        ):
            self._sampled.counters[name] = (text, _zero)
        self.logins_by_outcome: dict[str, Tally] = {
            outcome: self.logins.labels(outcome) for outcome in LOGIN_OUTCOMES
        }
        self.denied_by_reason: dict[str, Tally] = {
            reason: self.ws_denied.labels(reason) for reason in DENIED_REASONS
        }
        self.pushes_by_kind: dict[str, Tally] = {
            kind: self.ws_pushes.labels(kind) for kind in PUSH_KINDS
        }
        self._closed_by_code: dict[int, Tally] = {}
        self._closed_other = self.ws_closed.labels("other")
        self._revocations_by_reason: dict[str, Child] = {}

    def _tallies(self, name: str, text: str, label: str) -> Tallies:
        tallies = Tallies(name, text, label)
        self._sampled.tallies.append(tallies)
        return tallies

    # -- bindings made once at wiring --------------------------------------------------------

    def sample_gauge(self, name: str, read: Callable[[], float]) -> None:
        text, _ = self._sampled.gauges[name]
        self._sampled.gauges[name] = (text, read)

    def sample_counter(self, name: str, read: Callable[[], float]) -> None:
        text, _ = self._sampled.counters[name]
        self._sampled.counters[name] = (text, read)

    def messages_by_action(self, actions: Iterable[str]) -> dict[str, Tally]:
        """One child per known action, and ``unknown`` for the rest (bounded label values)."""
        children = {name: self.ws_messages.labels(name) for name in actions}
        children[""] = self.ws_messages.labels("unknown")
        return children

    def closed_by_code(self, codes: Iterable[int]) -> None:
        """The close codes counted under their own label; any other is ``other``."""
        for code in codes:
            self._closed_by_code[code] = self.ws_closed.labels(str(code))

    # -- updates off the hot path --------------------------------------------------------------

    def closed(self, code: int | None) -> None:
        self._closed_by_code.get(code or 1006, self._closed_other).inc()

    def revoked(self, reason: str) -> None:
        """Reasons come from the gateway's own fixed set, never from a client."""
        child = self._revocations_by_reason.get(reason)
        if child is None:
            child = self._revocations_by_reason[reason] = self.revocations.labels(reason)
        child.inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _zero() -> float:
    return 0.0
