"""The transactional outbox: events are rows written with the change, published by a relay.

A service declares its events (``kit.contracts``) and emits with ``self.events.emit("member_enrolled", {...})``
in domain values; with ``events = Outbox(EVENTS)`` the payload is checked against its contract first (a
mismatch is a ``ContractBroken`` in the producer's transaction). The event becomes a row of
``kit_outbox`` in the worker's transaction, so it exists if and only if the change committed. The relay
(a managed thread of the service) publishes unsent rows in order to ``<service>.events`` — the exchange
nameko's event handlers bind to — waits for the broker's confirm, then marks them sent. If the process
dies between the confirm and the mark, the event is published again on restart; consumers dedupe by
``event_id`` (kit.inbox), so delivery is at least once and the effect exactly once.

**The hand-over.** A command's events need not be read back to be published: once its transaction has committed,
the store hands the relay of the same process the rows it wrote (``Store.on_outbox_commit``), and the relay publishes
them from memory, waits for the confirm and marks them sent by ``event_id`` — one round trip a batch (the mark, with
its ``COMMIT``) where a read costs two (the read ``FOR UPDATE SKIP LOCKED``, then the mark). The table stays the truth:
what the process could not hand over or publish — it died after the commit, the broker refused the batch, the
hand-over was full (``OUTBOX_HANDOVER_LIMIT``), a batch job's multi-row insert (``kit.outbox_batch``) — is found by
the relay's read, which runs when nothing is handed over and at least every ``OUTBOX_POLL_SECONDS`` under load. That
read leaves rows younger than ``OUTBOX_HANDOVER_GRACE_SECONDS`` (1 s) to the process that wrote them, unless it was
woken by a write it was not handed or is retrying its own failure; an event read and also handed over (the read ran
between its commit and the hand-over) is published once (the relay remembers what its reads published). Another
replica's read can still take a row a moment before its writer marks it: published twice, deduplicated by the
consumers' inbox as any redelivery is.

Fault injection: with ``CARELOOP_OUTBOX_PAUSE_FILE`` set in its environment, the relay of that process stops
after it has taken a batch of committed events (read and locked, or handed over) and before it publishes them,
writes its pid to that file and waits there, so that a test can SIGKILL the process at the worst moment
(tests/integration/test_event_guarantees.py). Never set outside tests.

Several replicas on PostgreSQL share the read's work with ``FOR UPDATE SKIP LOCKED``. Events carry an
``event_id`` and ``occurred_at`` (UTC ISO 8601) added here; consumers must not rely on order across
aggregates.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections import Counter, deque
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
                         prepare=True, announce=True, created_at=UtcDateTime())
"""An event's row, written with the commit and then handed to the relay (``announce``)."""


_OUTBOX = OutboxEvent.__table__
_UNSENT = (select(_OUTBOX.c.id, _OUTBOX.c.event_id, _OUTBOX.c.event_type, _OUTBOX.c.payload, _OUTBOX.c.headers)
           .where(_OUTBOX.c.sent_at.is_(None), _OUTBOX.c.created_at < bindparam("before", type_=UtcDateTime()))
           .order_by(_OUTBOX.c.id).limit(bindparam("batch")))
"""The relay's read of a batch, built once (it ran once per batch: under load several times a second)."""
_UNSENT_PG = prepared(_UNSENT.with_for_update(skip_locked=True))
"""On PostgreSQL locked ``SKIP LOCKED`` (replicas share the work) and planned once per connection (``kit.db.prepared``):
the server parsed and planned it anew for every batch, the only statement of a command's path that still was."""

_MARK_SENT = AtCommit("UPDATE kit_outbox SET sent_at = :sent_at, attempts = attempts + 1 WHERE event_id = ANY(:event_ids)",
                      prepare=True, sent_at=UtcDateTime())
"""The relay's mark of a published batch, sent with its ``COMMIT`` (PostgreSQL: ``event_ids`` a list, an array): by
``event_id``, which a handed-over batch has (its commit did not return the ids) and a read batch reads."""

REMEMBERED = 10_000
"""How many event ids the relay remembers having published from its reads (a hand-over of one of them is dropped)."""


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
        self.handover_limit = int(config.get("OUTBOX_HANDOVER_LIMIT", 10_000))
        self.handover_grace = timedelta(seconds=float(config.get("OUTBOX_HANDOVER_GRACE_SECONDS", 1.0)))
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
        self._handed: deque[dict[str, Any]] = deque()  # committed by this process, not yet published: in commit order
        self._read_now = True  # the next read takes the youngest rows too (the first; after a failure; a batch job)
        self._last_read = float("-inf")
        self._read_ids: deque[str] = deque()  # what the reads published, newest last (REMEMBERED at most)
        self._read_id_set: set[str] = set()

    def start(self) -> None:
        self.database.store.on_outbox_commit(self.committed)
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

    def committed(self, announced: list[dict[str, Any]], unannounced: bool) -> None:
        """(The store, after a commit that wrote events) take what it hands over; wake the relay."""
        if unannounced or len(self._handed) + len(announced) > self.handover_limit:
            self._read_now = True  # found only by a read: at once (the hand-over, when full, is not waited for)
        else:
            self._handed.extend(announced)
        self.wake()

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
            if published < self.batch_size and not self._handed:
                woken = False
                with eventlet.Timeout(self.poll_interval, False):
                    woken = self._wake.wait()
                self._wake = Event()
                if not woken:  # a quiet interval: the read looks for what nobody handed over
                    self._last_read = float("-inf")

    def relay_once(self) -> int:
        """Publish one batch of unsent events; returns how many were published.

        What this process's commits handed over, unless a read is due (nothing handed over, a write that was not,
        or ``OUTBOX_POLL_SECONDS`` since the last read); else a batch read from the table. Either is published,
        then confirmed by the broker as a whole (``kit.confirms``), and only then marked sent: if anything fails,
        nothing is marked, and the next read (taking the youngest rows too) finds the batch again.
        """
        try:
            if self._handed and not self._read_now and self._clock() - self._last_read < self.poll_interval:
                return self._relay_handed()
            return self._relay_read()
        except BaseException:
            self._read_now = True
            raise

    def _relay_handed(self) -> int:
        """Publish a batch of what this process's commits handed over, then mark it sent by ``event_id``."""
        batch: list[dict[str, Any]] = []
        while self._handed and len(batch) < self.batch_size:
            event = self._handed.popleft()
            if event["event_id"] not in self._read_id_set:  # else a read published it already
                batch.append(event)
        if not batch:
            return 0
        if self.pause_file:
            self._pause_before_publish(len(batch))
        self.publisher.publish((event["event_type"], event["payload"], orjson.loads(event["headers"]))
                               for event in batch)
        with self.database.store.transaction() as session:  # PostgreSQL: BEGIN, the mark and COMMIT in one query
            self._mark_sent(session, [event["event_id"] for event in batch])
        self._count(event["event_type"] for event in batch)
        return len(batch)

    def _relay_read(self) -> int:
        """Read a batch of unsent rows (locked ``SKIP LOCKED`` on PostgreSQL), publish it, mark it with the commit."""
        store = self.database.store
        now = utcnow()
        before = now if self._read_now else now - self.handover_grace
        self._read_now, self._last_read = False, self._clock()
        with store.transaction() as session:
            rows = session.execute(_UNSENT_PG if store.is_postgresql else _UNSENT,
                                   {"batch": self.batch_size, "before": before}).all()
            if not rows:
                return 0
            if self.pause_file:
                self._pause_before_publish(len(rows))
            # the payload is the JSON the consumers read: published as it is, not decoded and encoded again
            self.publisher.publish((row.event_type, row.payload, orjson.loads(row.headers or "{}")) for row in rows)
            self._mark_sent(session, [row.event_id for row in rows])
        self._remember(row.event_id for row in rows)
        self._count(row.event_type for row in rows)
        if len(rows) == self.batch_size:
            self._read_now = True  # a backlog: the next read at once, not after the hand-over
        return len(rows)

    def _mark_sent(self, session: Session, event_ids: list[str]) -> None:
        """Mark a published batch sent in ``session``'s transaction (on PostgreSQL in the query that commits)."""
        now = utcnow()
        if self.database.store.is_postgresql:
            at_commit(session, _MARK_SENT, {"event_ids": event_ids, "sent_at": now})
        else:
            session.execute(update(_OUTBOX).where(_OUTBOX.c.event_id.in_(event_ids))
                            .values(sent_at=now, attempts=_OUTBOX.c.attempts + 1))

    def _remember(self, event_ids: Any) -> None:
        """Keep the ids a read published, so that a hand-over of one of them is dropped (``REMEMBERED`` at most)."""
        for event_id in event_ids:
            self._read_ids.append(event_id)
            self._read_id_set.add(event_id)
        while len(self._read_ids) > REMEMBERED:
            self._read_id_set.discard(self._read_ids.popleft())

    def _count(self, event_types: Any) -> None:
        for event_type, count in Counter(event_types).items():
            self._published(event_type).inc(count)

    @staticmethod
    def _clock() -> float:
        return eventlet.hubs.get_hub().clock()

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
        now = self._clock()
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
