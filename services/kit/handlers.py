"""Event handlers that apply each event once and never drop one.

``@event_handler("members", "member_enrolled")`` is nameko's event handler plus:
- **inbox**: a redelivered event that this handler already applied is acknowledged without running
  the handler again (``kit.inbox``); the inbox row commits with the handler's own changes.
- **ack after commit**: the message is acknowledged only after the kit committed the transaction.
- **retry with backoff**: a failing handler's message is republished to a delay queue (1 s, 5 s, 30 s,
  2 min, 10 min by default, ``EVENT_RETRY_DELAYS``), counting attempts in a header of our own.
- **dead letters**: after the last attempt, or at once for an ``Invalid`` payload that no retry can
  fix, the message is parked in ``careloop.dead.<service>`` with the error; ``kit.deadletters`` lists
  and replays it. If even parking fails, the message is requeued, never acknowledged.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

from kombu import Exchange, Queue
from nameko.amqp.publish import get_connection
from nameko.events import SERVICE_POOL
from nameko.events import EventHandler as NamekoEventHandler
from nameko.extensions import SharedExtension

from services.kit import inbox, queues
from services.kit.consumer import QueueConsumer
from services.kit.contracts import Event, load_event
from services.kit.db import Database, worker_db_of
from services.kit.deadletters import (  # noqa: F401 - the header names and queues, re-exported
    ATTEMPT_HEADER,
    ERROR_HEADER,
    ORIGIN_HEADER,
    PARKED_AT_HEADER,
    attempt_of,
    dead_letter_queue,
    dead_letter_queue_name,
    park,
    republish,
)
from services.kit.errors import Invalid
from services.kit.gates import Gates
from services.kit.telemetry import EVENTS_HANDLED

log = logging.getLogger(__name__)

DEFAULT_RETRY_DELAYS = (1, 5, 30, 120, 600)


def retry_queue_name(delay_seconds: float) -> str:
    return f"careloop.retry.{int(round(delay_seconds * 1000))}ms"


def retry_topology(delay_seconds: float, config: Any = None) -> tuple[Exchange, Queue]:
    """A fanout exchange and a queue whose messages wait ``delay`` and then return, via the default
    exchange, to the queue named by their routing key (the handler's own queue); classic or quorum as
    ``config`` says (``kit.queues``)."""
    name = retry_queue_name(delay_seconds)
    exchange = Exchange(name, type="fanout", durable=True)
    queue = Queue(name, exchange, durable=True,
                  queue_arguments=queues.delay_arguments(config, int(round(delay_seconds * 1000))))
    return exchange, queue


class Redelivery(SharedExtension):
    """Sends failed event messages back later (delay queues) or parks them (dead-letter queue)."""

    def setup(self) -> None:
        config = self.container.config
        self.amqp_uri = config["AMQP_URI"]
        self.delays = [float(d) for d in config.get("EVENT_RETRY_DELAYS", DEFAULT_RETRY_DELAYS)]
        self.dead_queue = dead_letter_queue(self.container.service_name, config)

    def start(self) -> None:
        with get_connection(self.amqp_uri) as connection:
            channel = connection.channel()
            try:
                for delay in self.delays:
                    _exchange, queue = retry_topology(delay, self.container.config)
                    queue(channel).declare()
                self.dead_queue(channel).declare()
            finally:
                channel.close()

    @property
    def max_attempts(self) -> int:
        return len(self.delays) + 1

    def retry(self, message: Any, attempt: int, error: str, origin_queue: str) -> None:
        """Send the message back to ``origin_queue`` after the delay of this attempt."""
        delay = self.delays[min(attempt, len(self.delays)) - 1]
        exchange, _queue = retry_topology(delay)
        # the routing key survives dead-lettering: after the TTL the default exchange routes the
        # message by it, straight back to the handler's queue
        republish(self.amqp_uri, message, exchange=exchange.name, routing_key=origin_queue,
                  headers={ATTEMPT_HEADER: attempt + 1, ERROR_HEADER: error[:1000]})

    def park(self, message: Any, attempt: int, error: str, origin_queue: str) -> None:
        park(self.amqp_uri, self.container.service_name, message, error, origin_queue, attempt)


class EventHandler(NamekoEventHandler):
    uses_inbox = True
    redelivery = Redelivery()
    queue_consumer = QueueConsumer()  # the kit's: survives the broker going away, parks what it cannot decode

    def __init__(self, source_service: str, event_type: str, gate: str | None = None, **kwargs: Any) -> None:
        super().__init__(source_service, event_type, handler_type=SERVICE_POOL, reliable_delivery=True,
                         requeue_on_error=False, **kwargs)
        self.gate = gate
        self.gate_exchange: Exchange | None = None

    def setup(self) -> None:
        if not any(isinstance(dep, Database) for dep in self.container.dependencies):
            raise RuntimeError(f"{self.container.service_name}.{self.method_name}: an event handler "
                               "needs a Database dependency for its inbox")
        if self.gate is not None and not any(isinstance(dep, Gates) for dep in self.container.dependencies):
            raise RuntimeError(f"{self.container.service_name}.{self.method_name}: a gated event handler needs "
                               "a Gates dependency to open its queue")
        super().setup()
        self._outcomes: dict[str, Any] = {}
        self.queue.queue_arguments = queues.consumer_arguments(
            self.container.config, dead_letter_queue_name(self.container.service_name))
        if self.gate is not None:  # declared unbound: only kit.gates binds it, while its interest is wanted
            self.gate_exchange = self.queue.exchange
            self.queue = Queue(self.queue.name, durable=True, auto_delete=False, exclusive=False,
                               queue_arguments=self.queue.queue_arguments)

    def _count(self, outcome: str) -> None:
        """``EVENTS_HANDLED`` for this handler and ``outcome``, its labelled child looked up once."""
        child = self._outcomes.get(outcome)
        if child is None:
            child = self._outcomes[outcome] = EVENTS_HANDLED.labels(self.container.service_name, self.method_name,
                                                                    outcome)
        child.inc()

    def handle_result(self, message: Any, worker_ctx: Any, result: Any = None,
                      exc_info: Any = None) -> tuple[Any, Any]:
        service, handler = self.container.service_name, self.method_name
        if exc_info is None:
            self._count("duplicate" if result is inbox.ALREADY_HANDLED else
                        "not_wanted" if result is inbox.NOT_WANTED else "ok")
            self.queue_consumer.ack_message(message)
            return result, exc_info

        error = exc_info[1]
        attempt = attempt_of(message)
        description = f"{type(error).__name__}: {error}"
        permanent = isinstance(error, Invalid)
        try:
            if permanent or attempt >= self.redelivery.max_attempts:
                self.redelivery.park(message, attempt, description, self.queue.name)
                outcome = "dead_lettered"
                log.error("event parked in the dead-letter queue", extra={
                    "handler": f"{service}.{handler}", "attempt": attempt, "error": description})
            else:
                self.redelivery.retry(message, attempt, description, self.queue.name)
                outcome = "retried"
                log.warning("event handler failed; retrying later", extra={
                    "handler": f"{service}.{handler}", "attempt": attempt, "error": description})
        except Exception:
            # The broker would not take the copy: keep the original, unacknowledged.
            log.exception("could not schedule a retry; requeueing the event")
            self.queue_consumer.requeue_message(message)
            return result, exc_info
        self._count(outcome)
        self.queue_consumer.ack_message(message)
        return result, exc_info


def event_handler(source: str | type[Event], event_type: str | None = None,
                  wanted: Callable[[Any, str], bool] | None = None, gate: str | None = None,
                  **kwargs: Any) -> Callable[[Callable], Callable]:
    """Handle events once each, with retries and dead letters.

    ``@event_handler(VisitCompleted)`` (a producer's contract, ``kit.contracts``) hands the handler the
    payload loaded by that contract, in domain values; a body that does not match it is parked at once.
    ``@event_handler("records", "visit_completed")`` hands over the raw body (services not yet on
    contracts).
    ``wanted(service, event_type)``, when given, runs first, before the inbox: a cheap check (reading with
    ``self.db.read()``, never writing) of whether this service has anything to do with the event at all. When
    it says no, the event is acknowledged without loading it, opening a transaction or writing an inbox row
    (outcome ``not_wanted``): a handler that would change nothing pays one read, not a transaction.
    ``gate``, when given, names the interest that binds the handler's queue (``kit.gates``): while nothing wants
    it the broker drops these events before they reach the service. A gated handler keeps its ``wanted`` check
    (gates close lazily). The service needs a ``Gates`` dependency.
    """
    contract = None
    if isinstance(source, type) and issubclass(source, Event):
        contract, source, event_type = source, source.producer, source.event_type
    if not source or not event_type:
        raise TypeError("event_handler needs a declared contract, or a source service and an event type")

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def guarded(self: Any, payload: Any) -> Any:
            if wanted is not None and not wanted(self, event_type):
                return inbox.NOT_WANTED
            worker_db = worker_db_of(self)
            key = inbox.event_key(worker_db.worker_ctx) if worker_db is not None else None
            if key is not None:
                if worker_db.store.is_postgresql:  # checked with the handler's first statement (kit.inbox)
                    inbox.check_first(worker_db.session, *key)
                elif inbox.seen(worker_db.session, *key):
                    return inbox.ALREADY_HANDLED
            try:
                return fn(self, load_event(contract, payload) if contract is not None else payload)
            except inbox.AlreadyHandledError:
                return inbox.ALREADY_HANDLED

        guarded.__signature__ = inspect.signature(fn)  # nameko checks call signatures against this
        guarded.contract = contract  # what the handler reads (the contract tests check every consumer)
        return EventHandler.decorator(source, event_type, gate=gate, **kwargs)(guarded)

    return decorate
