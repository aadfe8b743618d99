"""Readiness: the broker answers and every service answers a ``ping`` within a short deadline."""

from __future__ import annotations

from typing import Any

import eventlet
from nameko.extensions import DependencyProvider
from nameko.rpc import ReplyListener, ServiceProxy

DEFAULT_SERVICES = ("members", "notifications", "points", "records")


class Readiness(DependencyProvider):
    rpc_reply_listener = ReplyListener()

    def setup(self) -> None:
        self.services = tuple(self.container.config.get("READY_SERVICES", DEFAULT_SERVICES))
        self.timeout = float(self.container.config.get("READY_TIMEOUT", 2.0))

    def get_dependency(self, worker_ctx: Any) -> Any:
        def check() -> dict[str, str]:
            replies = {}
            states = {}
            for service in self.services:
                proxy = ServiceProxy(worker_ctx, service, self.rpc_reply_listener, expiration=self.timeout)
                try:
                    replies[service] = proxy.ping.call_async()
                except Exception as error:
                    states[service] = f"down: {type(error).__name__}"
            for service, reply in replies.items():
                try:
                    with eventlet.Timeout(self.timeout):
                        reply.result()
                    states[service] = "ok"
                except (Exception, eventlet.Timeout) as error:
                    states[service] = f"down: {type(error).__name__}"
            return states

        return check
