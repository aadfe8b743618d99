"""Reference services measured beside points in the same run.

- ``EchoService``: a bare nameko service answering ``echo`` — the framework's RPC ceiling on this
  machine (no database, no kit dependencies). ``KitSerializerEcho`` is the same under another name.
- ``KitFloorService``: the least a CareLoop command can do with the kit's guarantees — an ``@idempotent``
  RPC that claims its key, writes one outbox event and commits (the relay publishes it). What an earn
  costs beyond this floor is the points ledger's own work.
- The event handlers of the per-event tax (``test_framework_tax_perf.py::test_event_handler_tax``), all on
  ``perf_source``'s ``ticked`` events, each doing nothing but what its framework does per event:
  ``BareEventHandler`` (nameko's own ``event_handler``, no database), ``KitEventHandler`` (the kit's: inbox
  claim, contract-free payload, telemetry, commit before the ack) and ``KitRelayHandler`` (the same, emitting
  one event through the outbox, which its relay publishes: the relay's cost per event on top).
"""

from __future__ import annotations

from typing import Any

from nameko.events import event_handler as nameko_event_handler
from nameko.rpc import rpc

from services.kit import Database, Outbox, Service, event_handler, idempotent
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


SOURCE = "perf_source"
TICKED = "ticked"


class BareEventHandler:
    """nameko's bare event handler: the framework's floor per event."""

    name = "perf_bare_handler"

    @nameko_event_handler(SOURCE, TICKED)
    def ticked(self, event: dict[str, Any]) -> None:
        pass


class KitEventHandler(Service):
    """The kit's event handler doing nothing of its own: the inbox claim and the commit before the ack."""

    name = "perf_kit_handler"
    db = Database()

    @event_handler(SOURCE, TICKED)
    def ticked(self, event: dict[str, Any]) -> None:
        pass


class KitRelayHandler(Service):
    """The kit's handler emitting one event: what the outbox row and the relay add per event."""

    name = "perf_kit_relay"
    db = Database()
    events = Outbox()

    @event_handler(SOURCE, TICKED)
    def ticked(self, event: dict[str, Any]) -> None:
        self.events.emit("tocked", {"n": event.get("n")})


class KitEventHandlerBefore(KitEventHandler):
    """``KitEventHandler`` under another name, run from a checkout of older code (``TAX_BEFORE``)."""

    name = "perf_kit_handler_before"


class KitRelayHandlerBefore(KitRelayHandler):
    """``KitRelayHandler`` under another name, run from a checkout of older code (``TAX_BEFORE``)."""

    name = "perf_kit_relay_before"
