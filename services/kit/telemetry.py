"""Metrics and log context: every entrypoint counted and timed, every log line tagged with its call.

``Telemetry`` is the dependency every service declares (``telemetry = Telemetry()``): it serves
``/metrics`` on ``METRICS_PORT`` (once per process), times each worker into per-entrypoint call, error
and latency metrics, and binds the nameko call id and the caller's request id to the log context.
Business counters are declared once at module level with ``counter()`` / ``gauge()``.
"""

from __future__ import annotations

import contextvars
import logging
import time
from typing import Any

import prometheus_client
from nameko.extensions import DependencyProvider
from prometheus_client import Counter, Gauge, Histogram

from services.kit.errors import DomainError

log = logging.getLogger(__name__)

call_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("call_id", default=None)
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

ENTRYPOINT_CALLS = Counter("careloop_entrypoint_calls_total", "Entrypoint calls",
                           ["service", "entrypoint", "kind"])
ENTRYPOINT_ERRORS = Counter("careloop_entrypoint_errors_total",
                            "Entrypoint calls that ended in an error (domain errors included)",
                            ["service", "entrypoint", "error"])
ENTRYPOINT_LATENCY = Histogram("careloop_entrypoint_latency_seconds", "Entrypoint latency",
                               ["service", "entrypoint"], buckets=LATENCY_BUCKETS)
OUTBOX_BACKLOG = Gauge("careloop_outbox_backlog", "Events committed but not yet published", ["service"])
OUTBOX_OLDEST_AGE = Gauge("careloop_outbox_oldest_age_seconds",
                          "Age of the oldest unpublished event (0 when the backlog is empty)", ["service"])
OUTBOX_PUBLISHED = Counter("careloop_outbox_published_total", "Events published by the relay",
                           ["service", "event_type"])
OUTBOX_FAILURES = Counter("careloop_outbox_publish_failures_total", "Relay publish attempts that failed",
                          ["service"])
EVENTS_HANDLED = Counter("careloop_events_handled_total",
                         "Events by handler and outcome (ok, duplicate, not_wanted, retried, dead_lettered)",
                         ["service", "handler", "outcome"])
UNDECODABLE = Counter("careloop_messages_undecodable_total",
                      "Messages that could not be decoded, parked in the dead-letter queue", ["service", "queue"])
DEAD_LETTERS = Gauge("careloop_dead_letters", "Events parked in the service's dead-letter queue", ["service"])
GATES_OPEN = Gauge("careloop_event_gates_open",
                   "1 while an interest's gated event queues are bound to their exchange (kit.gates), else 0",
                   ["service", "interest"])

_business: dict[str, Any] = {}


def counter(name: str, documentation: str, labels: tuple[str, ...] = ()) -> Counter:
    """A business counter, declared once per process however many containers declare it."""
    if name not in _business:
        _business[name] = Counter(name, documentation, list(labels))
    return _business[name]


def gauge(name: str, documentation: str, labels: tuple[str, ...] = ()) -> Gauge:
    if name not in _business:
        _business[name] = Gauge(name, documentation, list(labels))
    return _business[name]


_servers: dict[int, Any] = {}


def serve_metrics(port: int) -> None:
    """Serve the process registry on ``port`` (idempotent: one server per port per process)."""
    if port and port not in _servers:
        _servers[port] = prometheus_client.start_http_server(port, addr="0.0.0.0")
        log.info("metrics served on :%d/metrics", port)


def entrypoint_kind(entrypoint: Any) -> str:
    name = type(entrypoint).__name__.lower()
    for kind in ("rpc", "event", "timer", "http"):
        if kind in name:
            return kind
    return "route" if "route" in name else name


class Telemetry(DependencyProvider):
    def setup(self) -> None:
        port = self.container.config.get("METRICS_PORT")
        if port:
            serve_metrics(int(port))
        self._started: dict[Any, float] = {}
        self._children: dict[Any, tuple[Any, Any]] = {}

    def worker_setup(self, worker_ctx: Any) -> None:
        self._started[worker_ctx] = time.perf_counter()
        call_id_var.set(worker_ctx.call_id)
        request_id_var.set(worker_ctx.data.get("request_id"))

    def _metrics_of(self, entrypoint: Any) -> tuple[Any, Any]:
        """The calls counter and latency histogram of ``entrypoint``, looked up by labels once, not per call."""
        children = self._children.get(entrypoint)
        if children is None:
            service, name = self.container.service_name, entrypoint.method_name
            children = (ENTRYPOINT_CALLS.labels(service, name, entrypoint_kind(entrypoint)),
                        ENTRYPOINT_LATENCY.labels(service, name))
            self._children[entrypoint] = children
        return children

    def worker_result(self, worker_ctx: Any, result: Any = None, exc_info: Any = None) -> None:
        started = self._started.pop(worker_ctx, None)
        calls, latency = self._metrics_of(worker_ctx.entrypoint)
        calls.inc()
        if started is not None:
            latency.observe(time.perf_counter() - started)
        if exc_info is not None:
            error = exc_info[1]
            label = error.code if isinstance(error, DomainError) else type(error).__name__
            ENTRYPOINT_ERRORS.labels(self.container.service_name, worker_ctx.entrypoint.method_name, label).inc()

    def worker_teardown(self, worker_ctx: Any) -> None:
        self._started.pop(worker_ctx, None)
