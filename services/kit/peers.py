"""Calling another CareLoop service from a service: RPC with a deadline.

nameko's ``RpcProxy`` waits forever for a reply, so a worker that asks a service which is down would
hang (and, on SQLite, hold the database gate). ``members = Peer("members")`` gives the service a proxy
whose calls give up after ``PEER_TIMEOUT`` seconds (default 5) with ``Unavailable`` — a domain error,
so an RPC caller gets a 503 it may retry and an event handler is retried later by the kit. The request
carries the same time to live, so a request nobody picked up in time is dropped by the broker.

The caller's identity and request id travel on, as with any nameko call made from a worker.

The gateway's ``Upstream`` is the same dependency with its own setting (``RPC_TIMEOUT``) and transient
requests; a subclass names its setting, default and persistence in the three class attributes below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import eventlet
from nameko.constants import NON_PERSISTENT
from nameko.exceptions import UnknownService
from nameko.rpc import RpcProxy

from services.kit.errors import Unavailable

DEFAULT_TIMEOUT = 5.0


class PeerProxy:
    """What a service method sees: ``self.members.get_member(member_id)``, bounded in time."""

    def __init__(self, make_proxy: Callable[[], Any], service_name: str, timeout: float) -> None:
        self._make_proxy = make_proxy
        self._proxy: Any = None
        self.service_name = service_name
        self._timeout = timeout

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if self._proxy is None:  # made on first use: a gateway worker holds a dozen peers and calls one
            self._proxy = self._make_proxy()
        method_proxy = getattr(self._proxy, method)
        service = self.service_name

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                reply = method_proxy.call_async(*args, **kwargs)
                with eventlet.Timeout(self._timeout):
                    return reply.result()
            except (eventlet.Timeout, UnknownService):
                raise Unavailable(f"The {service} service did not answer in time; try again (with the same "
                                  "idempotency key if the request had one).", details={"retry_after": 1}) from None

        return call


class Peer(RpcProxy):
    """A dependency calling ``target_service`` with a deadline (``PEER_TIMEOUT`` seconds)."""

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

    def get_dependency(self, worker_ctx: Any) -> PeerProxy:
        return PeerProxy(lambda: super(Peer, self).get_dependency(worker_ctx), self.target_service, self.timeout)
