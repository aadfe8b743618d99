"""Calling another CareLoop service from a service: RPC with a deadline, and silence as ``Unavailable``.

nameko's ``RpcProxy`` waits for a reply forever, and a service that is not running at all surfaces as
``UnknownService``. A service that calls a peer from a timer or a handler must not hang on it, and must
be able to tell "the peer said no" (a domain error: act on it) from "the peer did not answer" (try
again later). ``Peer("points")`` gives a proxy whose calls:

- give up after ``PEER_TIMEOUT`` seconds (default 5); the request message
  carries the same time to live, so a request nobody picked up in time is dropped by the broker
  instead of being run long after the caller gave up (the call should be idempotent: it may still
  have run);
- raise ``services.kit.errors.Unavailable`` on that timeout and when no instance of the peer exists;
- raise the peer's own domain errors (``Invalid``, ``NotFound``, ``Conflict``...) as themselves.

The gateway's ``Upstream`` does the same for HTTP requests (it answers 503 itself).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import eventlet
from nameko.exceptions import MethodNotFound, UnknownService
from nameko.rpc import RpcProxy

from services.kit.errors import Unavailable

DEFAULT_TIMEOUT = 5.0


class PeerProxy:
    """What a service method sees: ``self.points.issue_coupon(...)``."""

    def __init__(self, proxy: Any, timeout: float) -> None:
        self._proxy = proxy
        self._timeout = timeout

    @property
    def service_name(self) -> str:
        return self._proxy.service_name

    def __getattr__(self, method: str) -> Callable[..., Any]:
        method_proxy = getattr(self._proxy, method)
        target = f"{self._proxy.service_name}.{method}"

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                reply = method_proxy.call_async(*args, **kwargs)
                with eventlet.Timeout(self._timeout):
                    return reply.result()
            except eventlet.Timeout:
                raise Unavailable(f"{target} did not answer within {self._timeout:g} s.") from None
            except UnknownService:
                raise Unavailable(f"No instance of {self._proxy.service_name} is running.") from None
            except MethodNotFound:
                # a peer without this method yet (an older version during a rollout): it may come
                raise Unavailable(f"{target} is not offered by the running {self._proxy.service_name} "
                                  "(an older version?).") from None

        return call


class Peer(RpcProxy):
    """``points = Peer("points")``: RPC to another service with a deadline (see the module)."""

    def __init__(self, target_service: str, timeout: float | None = None) -> None:
        self._timeout = timeout
        super().__init__(target_service)

    def setup(self) -> None:
        self.timeout = float(self._timeout or self.container.config.get("PEER_TIMEOUT") or DEFAULT_TIMEOUT)
        self.options["expiration"] = self.timeout  # seconds; kombu sets the per-message TTL
        super().setup()

    def get_dependency(self, worker_ctx: Any) -> PeerProxy:
        return PeerProxy(super().get_dependency(worker_ctx), self.timeout)
