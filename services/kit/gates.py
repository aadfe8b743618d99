"""Event queues bound to their exchange only while the service wants their events.

A handler whose events are mostly unwanted still pays for each of them: the broker delivers it, the service
decodes it, a worker runs, the ``wanted`` check reads the database (``kit.handlers``), and only then is it
dropped. Interfaces forwards events to webhook subscribers, and most event types of a suite have none: in the
paid-visit flow and in a members import it consumed every event of the flow to drop nearly all of them
(``tests/perf/RESULTS.md``, issues 17 and 19). A **gated** handler's queue is bound to its exchange only while
something wants its events, so the broker drops what nobody wants before it reaches the service::

    gates = Gates(wanted=subscriptions.active_types)       # the interests something wants, read in a session

    @event_handler(MemberEnrolled, wanted=_subscribed, gate="member_enrolled")
    def on_member_enrolled(self, event): ...

    def subscribe(self, ...):
        row = subscriptions.create(self.db.session, ...)          # validated first: a refused one binds nothing
        self.gates.open(self.db.session, row.event_type)         # in the same transaction, before it commits

**The guarantee**: every event published after the transaction that made an interest wanted committed is
delivered to its gated handlers. ``open`` binds the queues *before* that transaction commits, holding the
interest's lock (``kit.locks``) until it does; closing takes the same lock, reads again what is wanted, and only
then unbinds. So a gate is never closed under an interest that a committed transaction wants. An event that
arrives while the gate is open but nobody wants it any more (the gate closes lazily) is dropped by the
handler's ``wanted`` check, as before: keep that check on every gated handler.

**Closing is lazy**: ``Gates`` reconciles the bindings with what is wanted when the service starts and every
``GATE_RECONCILE_SECONDS`` (60 by default) after: wanted interests opened, the others closed. An unsubscribe
therefore touches no broker; its gate closes within a minute, and nothing is lost if the broker is away then.

A gated queue is declared unbound (by nameko when the handler starts, and by ``kit.topology``): bindings live on
the broker with the durable queue, and only ``Gates`` adds or removes them. Several processes of a service share
the queues, so one process opening a gate opens it for all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import eventlet
from kombu import Connection, Exchange, Queue
from nameko.constants import AMQP_SSL_CONFIG_KEY
from nameko.extensions import DependencyProvider
from sqlalchemy.orm import Session

from services.kit.locks import serialise, serialise_many
from services.kit.telemetry import GATES_OPEN

log = logging.getLogger(__name__)

RECONCILE_SETTING = "GATE_RECONCILE_SECONDS"
DEFAULT_RECONCILE_SECONDS = 60.0
LOCK_KIND = "kit.gate"


@dataclass(frozen=True)
class GatedQueue:
    """A gated handler's queue and the binding that opens it."""

    queue: Queue
    """The queue as the handler declares it (unbound; its name and arguments are the handler's)."""
    exchange: Exchange
    routing_key: str


class Gates(DependencyProvider):
    """``self.gates``: open the queues of an interest before a transaction makes it wanted; the service's gated
    queues reconciled with ``wanted`` at start and every ``GATE_RECONCILE_SECONDS``.

    ``wanted(session)`` returns the interests (the ``gate`` names of ``@event_handler``) something wants now.
    """

    def __init__(self, wanted: Callable[[Session], set[str]]) -> None:
        self.wanted = wanted

    def setup(self) -> None:
        self.amqp_uri = self.container.config["AMQP_URI"]
        self.ssl = self.container.config.get(AMQP_SSL_CONFIG_KEY)
        self.interval = float(self.container.config.get(RECONCILE_SETTING, DEFAULT_RECONCILE_SECONDS))

    def start(self) -> None:
        self.container.spawn_managed_thread(self._keep_reconciled)

    def get_dependency(self, worker_ctx: Any) -> Gates:
        return self

    # -- the gated queues -------------------------------------------------------------------------------

    def queues(self) -> dict[str, list[GatedQueue]]:
        """Each interest's gated queues, from the service's event handlers (known once they are set up)."""
        from services.kit.handlers import EventHandler

        found: dict[str, list[GatedQueue]] = {}
        for entrypoint in self.container.entrypoints:
            if isinstance(entrypoint, EventHandler) and entrypoint.gate is not None:
                found.setdefault(entrypoint.gate, []).append(
                    GatedQueue(entrypoint.queue, entrypoint.gate_exchange, entrypoint.event_type))
        return found

    def _bind(self, gated: list[GatedQueue], bound: bool) -> None:
        # a connection of its own, not one of nameko's pooled ones: the reconcile thread is killed when the service
        # stops, maybe mid-connect, and a connection broken that way must not go back to a pool others draw from
        with Connection(self.amqp_uri, ssl=self.ssl) as connection:
            channel = connection.channel()
            try:
                for each in gated:
                    each.exchange(channel).declare()
                    each.queue(channel).declare()
                    (channel.queue_bind if bound else channel.queue_unbind)(
                        queue=each.queue.name, exchange=each.exchange.name, routing_key=each.routing_key)
            finally:
                channel.close()

    def _count(self, interest: str, is_open: bool) -> None:
        GATES_OPEN.labels(self.container.service_name, interest).set(1 if is_open else 0)

    # -- opening, closing ------------------------------------------------------------------------------

    def open(self, session: Session, interest: str) -> None:
        """Bind ``interest``'s queues now, holding its lock until ``session``'s transaction ends: call it before
        that transaction writes what makes the interest wanted. Raises if the broker cannot be reached (the
        transaction should then not commit either)."""
        gated = self.queues().get(interest)
        if not gated:
            return
        serialise(session, LOCK_KIND, self._lock_key(interest))
        self._bind(gated, bound=True)
        self._count(interest, True)

    def reconcile(self, session: Session) -> tuple[set[str], set[str]]:
        """Open the wanted interests' queues and close the others'; returns (opened, closed).

        The unwanted interests' locks are taken (all at once, in order) before what is wanted is read again, so
        no transaction that opened one of them can commit between that read and the unbinding."""
        by_interest = self.queues()
        wanted = self.wanted(session) & by_interest.keys()
        unwanted = sorted(by_interest.keys() - wanted)
        if unwanted:
            serialise_many(session, LOCK_KIND, [self._lock_key(interest) for interest in unwanted])
            wanted |= self.wanted(session) & set(unwanted)
        closed = {interest for interest in unwanted if interest not in wanted}
        for interest in sorted(by_interest):
            self._bind(by_interest[interest], bound=interest in wanted)
            self._count(interest, interest in wanted)
        return wanted, closed

    def _lock_key(self, interest: str) -> str:
        return f"{self.container.service_name}:{interest}"

    def _keep_reconciled(self) -> None:
        from services.kit.db import Database

        store = next(dep.store for dep in self.container.dependencies if isinstance(dep, Database))
        while True:
            try:
                with store.transaction() as session:
                    opened, closed = self.reconcile(session)
                log.debug("gates reconciled", extra={"open": sorted(opened), "closed": sorted(closed)})
            except Exception as error:  # the broker or the database away: the gates stay as they are
                log.warning("could not reconcile the event gates (%s); trying again in %.0f s",
                            type(error).__name__, self.interval)
            eventlet.sleep(self.interval)
