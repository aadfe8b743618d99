"""Events of a batch job written to the outbox together: one multi-row INSERT instead of one per event.

A nightly job that grades a thousand members may announce hundreds of changes per batch; written one by
one through the ORM (``outbox.write_event``) each costs a round trip. ``BatchEvents`` collects them and
``flush()`` writes them in the batch's transaction with a single executemany (multi-row ``VALUES`` on
PostgreSQL), in the order emitted. The guarantees are the outbox's: the rows commit with the batch or
not at all, and the relay publishes them after the commit (woken as for any outbox write). As with
``Outbox(EVENTS)``, each payload (domain values) is checked against the service's contract: at ``flush()``,
all the payloads of one event type at once (``Contracts.wire_many``: a batch's checks cost a fraction of one
check per emit); a mismatch is a ``ContractBroken`` naming the payload's position, raised in the batch's
transaction, and nothing is written.

    events = BatchEvents(session, EVENTS)
    events("segment_changed", {...})      # same call shape as self.events.emit
    events.flush()                        # before the batch's transaction commits
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy.orm import Session

from services.kit.clock import isoformat, utcnow
from services.kit.contracts import Contracts
from services.kit.insert_batch import insert_rows
from services.kit.models import OutboxEvent


def write_events(session: Session, contracts: Contracts, events: list[tuple[str, dict[str, Any]]],
                 headers: dict[str, Any] | None = None) -> list[str]:
    """Add ``(event_type, payload)`` events (domain values, checked against ``contracts``) to the outbox in
    ``session``'s transaction; returns their ids. One event that breaks its contract writes none."""
    return _write(session, _checked(contracts, events), headers)


def _checked(contracts: Contracts, events: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """The events in their JSON form, in their order, each event type's payloads checked together."""
    positions: dict[str, list[int]] = {}
    for position, (event_type, _payload) in enumerate(events):
        positions.setdefault(event_type, []).append(position)
    bodies: list[Any] = [None] * len(events)
    for event_type, at in positions.items():
        for position, body in zip(at, contracts.wire_many(event_type, [events[i][1] for i in at]), strict=True):
            bodies[position] = (event_type, body)
    return bodies


def _write(session: Session, bodies: list[tuple[str, dict[str, Any]]], headers: dict[str, Any] | None) -> list[str]:
    """Write events already checked and in their JSON form."""
    if not bodies:
        return []
    now = utcnow()
    encoded_headers = json.dumps(headers or {})
    rows, ids = [], []
    for event_type, payload in bodies:
        event_id = str(uuid.uuid4())
        body = {"event_id": event_id, "occurred_at": isoformat(now), **payload}
        rows.append({"event_id": event_id, "event_type": event_type, "payload": json.dumps(body),
                     "headers": encoded_headers, "created_at": now, "attempts": 0})
        ids.append(event_id)
    insert_rows(session, OutboxEvent.__table__, rows)
    session.info["outbox_dirty"] = True
    return ids


class BatchEvents:
    """An ``emit(event_type, payload)`` that keeps events until ``flush()`` checks them against ``contracts``
    (each event type's payloads together) and writes them in one go."""

    def __init__(self, session: Session, contracts: Contracts, headers: dict[str, Any] | None = None) -> None:
        self.session = session
        self.contracts = contracts
        self.headers = headers
        self.pending: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, event_type: str, payload: dict[str, Any]) -> None:
        # a copy: what is checked and written at flush is the payload as emitted
        self.pending.append((event_type, dict(payload) if isinstance(payload, dict) else payload))

    def flush(self) -> list[str]:
        pending, self.pending = self.pending, []
        return _write(self.session, _checked(self.contracts, pending), self.headers)
