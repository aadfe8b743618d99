"""Events written in bulk (kit.outbox_batch) keep the outbox's guarantees: in order, with the batch or not
at all, published by the relay once each."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import select

from services.kit import Database, Service, event_handler
from services.kit.models import InboxEntry, OutboxEvent
from services.kit.outbox_batch import BatchEvents
from services.members.events import EVENTS
from services.members.service import MembersService
from tests.harness import store_for, wait_for

RECEIVED: list[str] = []


class Listener(Service):
    name = "batch_listener"
    db = Database()

    @event_handler("members", "member_updated")
    def note(self, event: dict) -> None:
        RECEIVED.append(event["member_id"])


def test_batch_events_commit_in_order_with_the_batch_and_are_published_once(start_service, databases, backend):
    url = databases.fresh(backend, "members")
    store = store_for(url)
    members = [uuid.UUID(int=n + 1) for n in range(3)]
    try:
        with store.transaction() as session:
            events = BatchEvents(session, EVENTS)
            for member in members:
                events("member_updated", {"member_id": member, "changed": ["tier"]})
            ids = events.flush()
        with pytest.raises(RuntimeError), store.transaction() as session:
            events = BatchEvents(session, EVENTS)
            events("member_updated", {"member_id": uuid.uuid4(), "changed": ["email"]})
            events.flush()
            raise RuntimeError("the batch failed")
        with store.transaction() as session:
            rows = session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all()
            assert [row.event_id for row in rows] == ids
            bodies = [json.loads(row.payload) for row in rows]
            assert [b["member_id"] for b in bodies] == [str(member) for member in members]
            assert all(b["event_id"] == i and b["occurred_at"].endswith("Z") for b, i in zip(bodies, ids, strict=True))
    finally:
        store.dispose()

    RECEIVED.clear()
    listener = start_service(Listener, database_url=databases.fresh(backend, "notifications"))
    start_service(MembersService, database_url=url, NIGHTLY_AT="off")  # its relay publishes the rows
    wait_for(lambda: len(RECEIVED) >= 3, message="three events")
    listened = store_for(listener.database_url)
    try:
        wait_for(lambda: _inbox(listened) == 3, message="inbox rows")
    finally:
        listened.dispose()
    assert sorted(RECEIVED) == [str(member) for member in members]


def _inbox(store) -> int:
    with store.transaction() as session:
        return len(session.scalars(select(InboxEntry.id)).all())
