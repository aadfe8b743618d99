"""The transactional outbox: events are rows written with the change, published by a relay.

A service declares its events (``kit.contracts``) and emits with ``self.events.emit("member_enrolled", {...})``
in domain values; with ``events = Outbox(EVENTS)`` the payload is checked against its contract first (a
mismatch is a ``ContractBroken`` in the producer's transaction). The event becomes a row of
``kit_outbox`` in the worker's transaction, so it exists if and only if the change committed. The relay
(a managed thread of the service) publishes unsent rows in order to ``<service>.events`` — the exchange
nameko's event handlers bind to — waits for the broker's confirm, then marks them sent. If the process
dies between the confirm and the mark, the event is published again on restart; consumers dedupe by
``event_id`` (kit.inbox), so delivery is at least once and the effect exactly once.

Fault injection: with ``CARELOOP_OUTBOX_PAUSE_FILE`` set in its environment, the relay of that process stops
after it has locked a batch of committed events and before it publishes them, writes its pid to that file
and waits there, so that a test can SIGKILL the process at the worst moment (tests/integration/
test_event_guarantees.py). Never set outside tests.

Several replicas on PostgreSQL share the work with ``FOR UPDATE SKIP LOCKED``. Events carry an
``event_id`` and ``occurred_at`` (UTC ISO 8601) added here; consumers must not rely on order across
aggregates.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

import eventlet
import orjson
from eventlet.event import Event
from nameko.extensions import DependencyProvider
from nameko.standalone.events import get_event_exchange
from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from services.kit.clock import isoformat, utcnow
from services.kit.commit import AtCommit, at_commit
from services.kit.confirms import BatchPublisher
from services.kit.contracts import Contracts
from services.kit.db import Database, prepared
from services.kit.models import OutboxEvent, UtcDateTime
from services.kit.retention import purge as purge_expired
from services.kit.retention import retention
from services.kit.serializer import json_text
from services.kit.telemetry import OUTBOX_BACKLOG, OUTBOX_FAILURES, OUTBOX_OLDEST_AGE, OUTBOX_PUBLISHED

log = logging.getLogger(__name__)


_INSERT_EVENT = AtCommit("INSERT INTO kit_outbox (event_id, event_type, payload, headers, created_at, attempts) "
                         "VALUES (:event_id, :event_type, :payload, :headers, :created_at, 0)",
                         prepare=True, created_at=UtcDateTime())


_OUTBOX = OutboxEvent.__table__
_UNSENT = (select(_OUTBOX.c.id, _OUTBOX.c.event_type, _OUTBOX.c.payload, _OUTBOX.c.headers)
           .where(_OUTBOX.c.sent_at.is_(None)).order_by(_OUTBOX.c.id).limit(bindparam("batch")))
"""The relay's read of a batch, built once (it ran once per batch: under load several times a second)."""
_UNSENT_PG = prepared(_UNSENT.with_for_update(skip_locked=True))
"""On PostgreSQL locked ``SKIP LOCKED`` (replicas share the work) and planned once per connection (``kit.db.prepared``):
the server parsed and planned it anew for every batch, the only statement of a command's path that still was."""

_MARK_SENT = AtCommit("UPDATE kit_outbox SET sent_at = :sent_at, attempts = attempts + 1 WHERE id = ANY(:ids)",
                      prepare=True, sent_at=UtcDateTime())
"""The relay's mark of a published batch, sent with its ``COMMIT`` (PostgreSQL: ``ids`` a list, an array)."""


def write_event(session: Session, event_type: str, payload: dict[str, Any],
                headers: dict[str, Any] | None = None) -> str:
    """Add an event to the outbox in ``session``'s transaction; returns its ``event_id``.

    The row is written when the transaction commits (``kit.db.at_commit``: on PostgreSQL in the same query
    as the ``COMMIT``), never before: nothing reads it back in the transaction, and a rollback drops it.
    """
    event_id = str(uuid.uuid4())
    now = utcnow()
    body = {"event_id": event_id, "occurred_at": isoformat(now), **payload}
    at_commit(session, _INSERT_EVENT, {"event_id": event_id, "event_type": event_type, "payload": json_text(body),
                                       "headers": json_text(headers or {}), "created_at": now})
    session.info["outbox_dirty"] = True
    return event_id


class EventWriter:
    """What a service method sees as ``self.events``."""

    def __init__(self, outbox: Outbox, worker_ctx: Any) -> None:
        self._outbox = outbox
        self._worker_ctx = worker_ctx

    def emit(self, event_type: str, payload: dict[str, Any], session: Session | None = None) -> str:
        """Emit ``event_type`` with the change being made (in the worker's session unless given one)."""
        if self._outbox.contracts is not None:
            payload = self._outbox.contracts.wire(event_type, payload)
        if session is None:
            session = self._outbox.database.worker_db(self._worker_ctx).session
        headers = {"nameko.call_id_stack": self._worker_ctx.call_id_stack}
        return write_event(session, event_type, payload, headers)


class Outbox(DependencyProvider):
    def __init__(self, contracts: Contracts | None = None) -> None:
        """``contracts``: the service's declared events (every event it emits must be declared there)."""
        self.contracts = contracts

    def setup(self) -> None:
        config = self.container.config
        self.database = next((d for d in self.container.dependencies if isinstance(d, Database)), None)
        if self.database is None:
            raise RuntimeError("Outbox needs a Database dependency in the same service")
        self.amqp_uri = config["AMQP_URI"]
        self.exchange = get_event_exchange(self.container.service_name, config)
        self.relay_enabled = bool(config.get("OUTBOX_RELAY", True))
        self.batch_size = int(config.get("OUTBOX_BATCH", 200))
        self.poll_interval = float(config.get("OUTBOX_POLL_SECONDS", 1.0))
        self.retention = timedelta(days=float(config.get("OUTBOX_RETENTION_DAYS", 7)))
        self.inbox_retention = retention(config, "INBOX_RETENTION_DAYS")
        self.idempotency_retention = retention(config, "IDEMPOTENCY_RETENTION_DAYS")
        self.pause_file = os.environ.get("CARELOOP_OUTBOX_PAUSE_FILE")  # fault injection, see the docstring
        self.publisher = BatchPublisher(self.amqp_uri, self.exchange, serializer=self.container.serializer)
        self._running = False
        self._wake = Event()
        self._last_stats = 0.0
        self._last_purge = 0.0
        self._published_children: dict[str, Any] = {}

    def start(self) -> None:
        self.database.store.on_outbox_commit(self.wake)
        if self.relay_enabled:
            self._running = True
            self.container.spawn_managed_thread(self._relay_forever, identifier="outbox-relay")

    def stop(self) -> None:
        self._running = False
        self.wake()

    def kill(self) -> None:
        self.stop()

    def get_dependency(self, worker_ctx: Any) -> EventWriter:
        return EventWriter(self, worker_ctx)

    def wake(self) -> None:
        if not self._wake.ready():
            self._wake.send(True)

    def _relay_forever(self) -> None:
        try:
            self._relay_until_stopped()
        finally:
            self.publisher.close()

    def _relay_until_stopped(self) -> None:
        failures = 0
        while self._running:
            try:
                published = self.relay_once()
                failures = 0
            except Exception:
                failures += 1
                OUTBOX_FAILURES.labels(self.container.service_name).inc()
                log.exception("outbox relay could not publish; will retry")
                eventlet.sleep(min(0.5 * 2 ** failures, 10))
                continue
            try:
                self._housekeeping()
            except Exception:
                # this is a managed thread: an exception leaving it kills the whole service (nameko), and the
                # database going away between the publish and the backlog gauge's read must not do that
                log.exception("outbox housekeeping (backlog gauge, purge) failed; will try again")
            if published < self.batch_size:
                with eventlet.Timeout(self.poll_interval, False):
                    self._wake.wait()
                self._wake = Event()

    def relay_once(self) -> int:
        """Publish one batch of unsent events; returns how many were published.

        The batch is published, then confirmed by the broker as a whole (``kit.confirms``), and only then
        marked sent, in the transaction that locked the rows: if anything fails, nothing is marked.
        """
        store = self.database.store
        table = _OUTBOX
        with store.transaction() as session:
            rows = session.execute(_UNSENT_PG if store.is_postgresql else _UNSENT, {"batch": self.batch_size}).all()
            if not rows:
                return 0
            if self.pause_file:
                self._pause_before_publish(len(rows))
            # the payload is the JSON the consumers read: published as it is, not decoded and encoded again
            self.publisher.publish((row.event_type, row.payload, orjson.loads(row.headers or "{}")) for row in rows)
            ids, now = [row.id for row in rows], utcnow()
            if store.is_postgresql:  # marked in the query that commits: one round trip, not two
                at_commit(session, _MARK_SENT, {"ids": ids, "sent_at": now})
            else:
                session.execute(update(table).where(table.c.id.in_(ids))
                                .values(sent_at=now, attempts=table.c.attempts + 1))
        for event_type, count in Counter(row.event_type for row in rows).items():
            self._published(event_type).inc(count)
        return len(rows)

    def _published(self, event_type: str) -> Any:
        """``OUTBOX_PUBLISHED`` of ``event_type``, its labelled child looked up once."""
        child = self._published_children.get(event_type)
        if child is None:
            child = self._published_children[event_type] = OUTBOX_PUBLISHED.labels(self.container.service_name,
                                                                                    event_type)
        return child

    def _pause_before_publish(self, count: int) -> None:
        """Fault injection: committed events locked, none published; say so and wait to be killed."""
        log.warning("outbox relay paused before publishing %d events (CARELOOP_OUTBOX_PAUSE_FILE)", count)
        with open(self.pause_file, "w", encoding="utf-8") as handle:
            handle.write(f"{os.getpid()} {count}\n")
        while self._running:
            eventlet.sleep(0.1)
        raise RuntimeError("stopped while paused before publishing (fault injection)")

    def _housekeeping(self) -> None:
        now = eventlet.hubs.get_hub().clock()
        if now - self._last_stats >= 5:
            self._last_stats = now
            self.refresh_stats()
        if now - self._last_purge >= 3600:
            self._last_purge = now
            self.purge_sent()
            purge_expired(self.database.store, self.inbox_retention, self.idempotency_retention)

    def refresh_stats(self) -> None:
        with self.database.store.transaction() as session:
            count, oldest = session.execute(
                select(func.count(OutboxEvent.id), func.min(OutboxEvent.created_at))
                .where(OutboxEvent.sent_at.is_(None))
            ).one()
        service = self.container.service_name
        OUTBOX_BACKLOG.labels(service).set(count)
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=utcnow().tzinfo)
        OUTBOX_OLDEST_AGE.labels(service).set((utcnow() - oldest).total_seconds() if oldest else 0)

    def purge_sent(self) -> None:
        """Forget events published longer ago than the retention (kept a while for investigations)."""
        cutoff = utcnow() - self.retention
        with self.database.store.transaction() as session:
            session.execute(delete(OutboxEvent).where(OutboxEvent.sent_at < cutoff))
