"""Calling the services from the gateway: RPC with a deadline.

nameko's proxy waits forever for a reply. ``Upstream("members")`` gives the route a proxy whose calls
give up after ``RPC_TIMEOUT`` seconds (the route answers 503); the request message carries the same
time to live, so a request nobody picked up in time is dropped by the broker instead of being run
long after the caller gave up. Mutating routes take an Idempotency-Key, so the caller's retry is safe
either way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import eventlet
from nameko.constants import NON_PERSISTENT
from nameko.rpc import RpcProxy

DEFAULT_TIMEOUT = 10.0


class DeadlineProxy:
    def __init__(self, proxy: Any, timeout: float) -> None:
        self._proxy = proxy
        self._timeout = timeout

    @property
    def service_name(self) -> str:
        return self._proxy.service_name

    def __getattr__(self, method: str) -> Callable[..., Any]:
        method_proxy = getattr(self._proxy, method)

        def call(*args: Any, **kwargs: Any) -> Any:
            reply = method_proxy.call_async(*args, **kwargs)
            with eventlet.Timeout(self._timeout):
                return reply.result()

        return call


class Upstream(RpcProxy):
    def __init__(self, target_service: str, timeout: float | None = None) -> None:
        self._timeout = timeout
        super().__init__(target_service)

    def setup(self) -> None:
        self.timeout = float(self._timeout or self.container.config.get("RPC_TIMEOUT", DEFAULT_TIMEOUT))
        self.options["expiration"] = self.timeout  # seconds; kombu sets the per-message TTL
        # A request outlives neither its deadline nor a broker restart usefully: keep it in memory
        # (nameko's default is persistent, which makes the broker write every request to disk).
        # Publisher confirms stay on: they are how an unknown service is told apart from a slow one.
        self.options["delivery_mode"] = NON_PERSISTENT
        super().setup()

    def get_dependency(self, worker_ctx: Any) -> DeadlineProxy:
        return DeadlineProxy(super().get_dependency(worker_ctx), self.timeout)
