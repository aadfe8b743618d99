"""Calling another CareLoop service from a service: RPC with a deadline.

nameko's ``RpcProxy`` waits forever for a reply, so a worker that asks a service which is down would
hang (and, on SQLite, hold the database gate). ``members = Peer("members")`` gives the service a proxy
whose calls give up after ``PEER_TIMEOUT`` seconds (default 5) with ``Unavailable`` — a domain error,
so an RPC caller gets a 503 it may retry and an event handler is retried later by the kit. The request
carries the same time to live, so a request nobody picked up in time is dropped by the broker.

The caller's identity and request id travel on, as with any nameko call made from a worker.

Requests go out and replies come back on RabbitMQ's direct reply-to, one channel per process
(``kit.replies``): no reply queue, no acknowledgement of each reply, no publisher confirm to wait for; an
unknown service is told by the broker returning the request. The broker being away is ``Unavailable`` too, and
quickly: a call while the process has no connection fails within a second, and a call waiting for its reply
when the connection dies fails then (its reply was addressed to that channel); the connection is made again
within seconds of the broker's return. The deadline covers the publish too (an interrupted publish costs the
connection, which is made again).

The gateway's ``Upstream`` is the same dependency with its own setting (``RPC_TIMEOUT``) and transient
requests; a subclass names its setting, default and persistence in the three class attributes below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import eventlet
from nameko.constants import NON_PERSISTENT, PERSISTENT
from nameko.exceptions import UnknownService
from nameko.extensions import DependencyProvider

from services.kit import inbox
from services.kit.consumer import BROKER_ERRORS
from services.kit.db import Database
from services.kit.errors import Unavailable
from services.kit.replies import DirectMethodProxy, DirectReplies

DEFAULT_TIMEOUT = 5.0


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
            try:
                with eventlet.Timeout(self._timeout):
                    return method_proxy.call_async(*args, **kwargs).result()
            except (eventlet.Timeout, UnknownService):
                raise Unavailable(f"The {service} service did not answer in time; try again (with the same "
                                  "idempotency key if the request had one).", details={"retry_after": 1}) from None
            except BROKER_ERRORS:
                raise Unavailable("The message broker cannot be reached just now; try again (with the same "
                                  "idempotency key if the request had one).", details={"retry_after": 5}) from None

        return call


class Peer(DependencyProvider):
    """A dependency calling ``target_service`` with a deadline (``PEER_TIMEOUT`` seconds)."""

    replies = DirectReplies()

    timeout_setting = "PEER_TIMEOUT"
    default_timeout = DEFAULT_TIMEOUT
    persistent = True
    """Whether the broker writes each request to disk (nameko's default). A request that cannot outlive its
    deadline gains nothing from it."""

    def __init__(self, target_service: str, timeout: float | None = None) -> None:
        self.target_service = target_service
        self._timeout = timeout

    def setup(self) -> None:
        configured = self.container.config.get(self.timeout_setting, self.default_timeout)
        self.timeout = float(self._timeout or configured)
        self._delivery_mode = PERSISTENT if self.persistent else NON_PERSISTENT
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
            def make_method(method: str) -> DirectMethodProxy:
                # the request's time to live is the deadline: the broker drops a request nobody took in time
                return DirectMethodProxy(ctx, self.target_service, method, self.replies, self._delivery_mode,
                                         self.timeout)

            return PeerProxy(make_method, self.target_service, self.timeout,
                             (lambda: proxy(_AsService(worker_ctx))) if ctx is worker_ctx else None, before_call)

        return proxy(worker_ctx)
