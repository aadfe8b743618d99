"""Reference services measured beside points in the same run.

- ``EchoService``: a bare nameko service answering ``echo`` — the framework's RPC ceiling on this
  machine (no database, no kit dependencies). ``KitSerializerEcho`` is the same under another name.
- ``KitFloorService``: the least a CareLoop command can do with the kit's guarantees — an ``@idempotent``
  RPC that claims its key, writes one outbox event and commits (the relay publishes it). What an earn
  costs beyond this floor is the points ledger's own work.
"""

from __future__ import annotations

from typing import Any

from nameko.rpc import rpc

from services.kit import Database, Outbox, Service, idempotent
from services.kit import rpc as kit_rpc


class EchoService:
    name = "perf_echo"

    @rpc
    def echo(self, *args: Any, **kwargs: Any) -> Any:
        return [args, kwargs]


class KitSerializerEcho(EchoService):
    """The same echo under another name, so that it can run beside ``EchoService`` with the kit's serializer
    (chosen by its config) while that one keeps nameko's default (``test_framework_tax_perf.py``)."""

    name = "perf_echo_kit_serializer"


class KitEcho(Service):
    """The echo as a CareLoop service: the kit's container, consumer and replies, caller identity, telemetry."""

    name = "perf_kit_echo"

    @kit_rpc
    def echo(self, *args: Any, **kwargs: Any) -> Any:
        return [args, kwargs]


class KitEchoBefore(KitEcho):
    """``KitEcho`` under another name, to run from a checkout of older code beside today's
    (``TAX_BEFORE`` in ``test_framework_tax_perf.py``)."""

    name = "perf_kit_echo_before"


class KitFloorService(Service):
    name = "perf_kit_floor"
    db = Database()
    events = Outbox()

    @kit_rpc
    @idempotent
    def record(self, member_id: str, award: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        self.events.emit("recorded", {"member_id": member_id, "source_ref": award.get("source_ref")})
        return {"member_id": member_id, "recorded": True}
