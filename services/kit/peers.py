"""Calling another CareLoop service from a service: RPC with a deadline.

nameko's ``RpcProxy`` waits forever for a reply, so a worker that asks a service which is down would
hang (and, on SQLite, hold the database gate). ``members = Peer("members")`` gives the service a proxy
whose calls give up after ``PEER_TIMEOUT`` seconds (default 5) with ``Unavailable`` — a domain error,
so an RPC caller gets a 503 it may retry and an event handler is retried later by the kit. The request
carries the same time to live, so a request nobody picked up in time is dropped by the broker.

The caller's identity and request id travel on, as with any nameko call made from a worker.

The broker being away is ``Unavailable`` too, and quickly: nameko's publisher keeps trying to connect for
seconds (3 s measured with the broker refusing connections, longer when it does not answer at all) before
failing; a peer call tries twice within about a second
(``PUBLISH_TRANSPORT_OPTIONS``, ``PUBLISH_RETRY_POLICY``: enough to replace a pooled connection a broker
restart left stale). Replies come back on the kit's reply listener (``kit.consumer``), which reconnects
after an outage like every other consumer of the service.

The gateway's ``Upstream`` is the same dependency with its own setting (``RPC_TIMEOUT``) and transient
requests; a subclass names its setting, default and persistence in the three class attributes below.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import eventlet
from nameko.amqp.publish import Publisher
from nameko.constants import DEFAULT_TRANSPORT_OPTIONS, NON_PERSISTENT
from nameko.exceptions import UnknownService
from nameko.rpc import MethodProxy, RpcProxy

from services.kit import inbox
from services.kit.consumer import BROKER_ERRORS, ReplyListener
from services.kit.db import Database
from services.kit.errors import Unavailable

DEFAULT_TIMEOUT = 5.0
PUBLISH_TRANSPORT_OPTIONS = {**DEFAULT_TRANSPORT_OPTIONS, "max_retries": 1, "interval_start": 0.2,
                             "interval_step": 0.3, "interval_max": 0.5}
"""How long a request's publish tries to (re)connect to the broker before giving up (~0.2 s, once)."""
PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0.2, "interval_step": 0.3, "interval_max": 0.5}
"""And how often the publish itself is tried again after a connection error (once more)."""


class _QuickPublisher(Publisher):
    transport_options = PUBLISH_TRANSPORT_OPTIONS
    retry_policy = PUBLISH_RETRY_POLICY


class QuickMethodProxy(MethodProxy):
    """nameko's method proxy, whose publish gives up within about a second when the broker is away."""

    publisher_cls = _QuickPublisher


class _AsService:
    """A worker context whose calls carry no caller: the peer sees the calling service, not the person."""

    def __init__(self, worker_ctx: Any) -> None:
        self._worker_ctx = worker_ctx

    def __getattr__(self, name: str) -> Any:
        return getattr(self._worker_ctx, name)

    @property
    def context_data(self) -> dict[str, Any]:
        data = dict(self._worker_ctx.context_data)
        data.pop("caller", None)
        return data


class PeerProxy:
    """What a service method sees: ``self.members.get_member(member_id)``, bounded in time."""

    def __init__(self, make_method: Callable[[str], Any], service_name: str, timeout: float,
                 as_service: Callable[[], PeerProxy] | None = None,
                 before_call: Callable[[], None] | None = None) -> None:
        # method proxies are made only when a method is called: a gateway worker holds a dozen peers, calls one
        self._make_method = make_method
        self.service_name = service_name
        self._timeout = timeout
        self._as_service = as_service
        self._before_call = before_call

    def as_service(self) -> PeerProxy:
        """The same peer, called by this service itself rather than on behalf of the person it serves: for a
        step the person may not take directly but the service may (points recording a tier it sold)."""
        if self._as_service is None:
            return self
        return self._as_service()

    def __getattr__(self, method: str) -> Callable[..., Any]:
        method_proxy = self._make_method(method)
        service = self.service_name

        def call(*args: Any, **kwargs: Any) -> Any:
            if self._before_call is not None:
                self._before_call()
            deadline = time.monotonic() + self._timeout
            try:
                # the publish stays outside the timeout: interrupting it could cut a frame in half on a
                # pooled connection; it gives up by itself within about a second (PUBLISH_*)
                reply = method_proxy.call_async(*args, **kwargs)
                with eventlet.Timeout(max(deadline - time.monotonic(), 0.01)):
                    return reply.result()
            except (eventlet.Timeout, UnknownService):
                raise Unavailable(f"The {service} service did not answer in time; try again (with the same "
                                  "idempotency key if the request had one).", details={"retry_after": 1}) from None
            except BROKER_ERRORS:
                raise Unavailable("The message broker cannot be reached just now; try again (with the same "
                                  "idempotency key if the request had one).", details={"retry_after": 5}) from None

        return call


class Peer(RpcProxy):
    """A dependency calling ``target_service`` with a deadline (``PEER_TIMEOUT`` seconds)."""

    rpc_reply_listener = ReplyListener()

    timeout_setting = "PEER_TIMEOUT"
    default_timeout = DEFAULT_TIMEOUT
    persistent = True
    """Whether the broker writes each request to disk (nameko's default). A request that cannot outlive its
    deadline gains nothing from it; publisher confirms stay on either way (they tell an unknown service
    from a slow one)."""

    def __init__(self, target_service: str, timeout: float | None = None) -> None:
        self._timeout = timeout
        super().__init__(target_service)

    def setup(self) -> None:
        configured = self.container.config.get(self.timeout_setting, self.default_timeout)
        self.timeout = float(self._timeout or configured)
        self.options["expiration"] = self.timeout  # seconds; kombu sets the per-message TTL
        if not self.persistent:
            self.options["delivery_mode"] = NON_PERSISTENT
        super().setup()
        self._database = next((d for d in self.container.dependencies if isinstance(d, Database)), None)

    def get_dependency(self, worker_ctx: Any) -> PeerProxy:
        before_call = None
        if self._database is not None:
            database = self._database

            def before_call() -> None:
                """An event handler's inbox check goes out before its first call (``kit.inbox``): nothing leaves
                the process for an event already applied."""
                worker_db = database.find_worker_db(worker_ctx)
                if worker_db is not None and worker_db.has_session:
                    inbox.check_now(worker_db.session)

        def proxy(ctx: Any) -> PeerProxy:
            def make_method(method: str) -> QuickMethodProxy:
                return QuickMethodProxy(ctx, self.target_service, method, self.rpc_reply_listener, **self.options)

            return PeerProxy(make_method, self.target_service, self.timeout,
                             (lambda: proxy(_AsService(worker_ctx))) if ctx is worker_ctx else None, before_call)

        return proxy(worker_ctx)
