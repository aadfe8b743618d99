"""Readiness: which of the gateway's dependencies answer now — the broker, its own database, each service.

``/ready`` asks all of them at once, each within ``READY_TIMEOUT`` seconds (default 2): the broker by
opening a connection to it, the gateway's database with ``SELECT 1``, each service with its ``ping`` RPC.
A dependency that fails is named with why (``"down: ECONNREFUSED"``); ``/health`` stays a check of the
gateway process alone.
"""

from __future__ import annotations

from typing import Any

import eventlet
from kombu import Connection
from nameko.constants import NON_PERSISTENT
from nameko.extensions import DependencyProvider
from sqlalchemy import text

from services.kit.db import Database
from services.kit.replies import DirectMethodProxy, DirectReplies

DEFAULT_SERVICES = ("interfaces", "members", "notifications", "points", "records")


def _why(error: BaseException) -> str:
    """A short reason: the error's class, and its message when that is short and says more."""
    name = type(error).__name__
    message = str(error).strip()
    return f"down: {name}: {message}" if message and len(message) <= 80 else f"down: {name}"


class Readiness(DependencyProvider):
    replies = DirectReplies()  # the gateway's one channel for its calls (kit.replies), shared with its Upstreams

    def setup(self) -> None:
        config = self.container.config
        self.services = tuple(config.get("READY_SERVICES", DEFAULT_SERVICES))
        self.timeout = float(config.get("READY_TIMEOUT", 2.0))
        self.amqp_uri = config["AMQP_URI"]
        self.database = next((d for d in self.container.dependencies if isinstance(d, Database)), None)

    def get_dependency(self, worker_ctx: Any) -> Any:
        def check() -> dict[str, str]:
            """``{"broker": "ok", "database": "ok", "members": "down: Timeout", ...}``"""
            checks = {"broker": self._broker, "database": self._database}
            checks.update({service: lambda s=service: self._service(worker_ctx, s) for service in self.services})
            pool = eventlet.GreenPool(len(checks))
            results = dict(pool.imap(self._run, checks.items()))
            return {name: results[name] for name in checks}

        return check

    def _run(self, item: tuple[str, Any]) -> tuple[str, str]:
        name, probe = item
        try:
            with eventlet.Timeout(self.timeout):
                probe()
            return name, "ok"
        except eventlet.Timeout:
            return name, "down: no answer in time"
        except Exception as error:
            return name, _why(error)

    def _broker(self) -> None:
        connection = Connection(self.amqp_uri, connect_timeout=self.timeout)
        try:
            connection.ensure_connection(max_retries=0)
        finally:
            connection.release()

    def _database(self) -> None:
        if self.database is None:
            return
        with self.database.store.transaction() as session:
            session.execute(text("SELECT 1"))

    def _service(self, worker_ctx: Any, service: str) -> None:
        ping = DirectMethodProxy(worker_ctx, service, "ping", self.replies, NON_PERSISTENT, self.timeout)
        ping.call_async().result()
