"""The base of every CareLoop service: the kit's per-service dependencies and operator entrypoints.

A service inherits ``Service``, adds the dependencies it needs and its entrypoints::

    class PointsService(Service):
        name = "points"
        db = Database()
        events = Outbox()

        @rpc
        def balance(self, member_id: str) -> dict: ...

Inherited: ``config``, ``caller`` (who is calling), ``telemetry`` (metrics and log context), ``group``
(the group's time zone, currency and branches), and the
RPCs ``ping`` (readiness), ``dead_letters`` and ``replay_dead_letters`` (group admins only).
"""

from __future__ import annotations

import logging
from typing import Any

from nameko.dependency_providers import Config
from nameko.timer import timer

from services.kit import deadletters
from services.kit.caller import Caller
from services.kit.config import Group, group_from_config
from services.kit.consumer import Rpc
from services.kit.errors import DomainError
from services.kit.schemas import page_limit
from services.kit.telemetry import DEAD_LETTERS, Telemetry

log = logging.getLogger(__name__)


def rpc(fn: Any = None, **kwargs: Any) -> Any:
    """nameko's ``@rpc`` on the kit's consumer (``kit.consumer``: survives the broker going away), with the
    kit's domain errors as expected (logged as warnings, not crashes)."""
    kwargs.setdefault("expected_exceptions", DomainError)
    decorator = Rpc.decorator(**kwargs)
    return decorator(fn) if fn is not None else decorator


class Service:
    name = "service"
    config = Config()
    caller = Caller()
    telemetry = Telemetry()

    @property
    def group(self) -> Group:
        """The group this service serves (time zone, currency, branches), from ``GROUP_FILE``."""
        return group_from_config(self.config)

    @rpc
    def ping(self) -> dict[str, Any]:
        return {"service": self.name, "ok": True}

    @rpc
    def dead_letters(self, limit: int | None = None) -> list[dict[str, Any]]:
        self.caller.require_role("group_admin", action="read dead letters")
        return deadletters.list_dead_letters(self.config["AMQP_URI"], self.name, page_limit(limit, 50, 500),
                                             config=self.config)

    @rpc
    def replay_dead_letters(self, limit: int | None = None) -> dict[str, int]:
        self.caller.require_role("group_admin", action="replay dead letters")
        limit = page_limit(limit, 100, 10_000)
        return {"replayed": deadletters.replay_dead_letters(self.config["AMQP_URI"], self.name, limit,
                                                                config=self.config)}

    @timer(interval=30)
    def measure_dead_letters(self) -> None:
        """Keep the dead-letter gauge current for alerting."""
        try:
            DEAD_LETTERS.labels(self.name).set(deadletters.count_dead_letters(self.config["AMQP_URI"], self.name,
                                                                                     config=self.config))
        except Exception:  # the broker being away is reported by /ready, not by this gauge
            log.warning("could not count dead letters", exc_info=True)
