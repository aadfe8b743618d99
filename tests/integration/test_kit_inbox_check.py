"""The inbox's look-up of a redelivered event, sent with the handler's first statement (``kit.inbox``).

On PostgreSQL a handler's first query is ``BEGIN;SELECT kit_inbox_unseen(…);<its statement>``: an event already
applied fails that query as a whole, so the handler gets no further than its first statement, and its worker
ends as a duplicate (acknowledged, not retried) whatever the handler's code made of the error. A call to a peer
before any statement sends the look-up first: nothing leaves the process for an event already applied. On
SQLite the look-up is a query before the handler: the same outcomes.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from nameko.standalone.events import event_dispatcher
from sqlalchemy import text

from services.kit import Database, Service, event_handler, rpc
from services.kit.clock import utcnow
from services.kit.peers import Peer
from services.notifications.models import Delivery
from tests.harness import events_handled, scalar, wait_for

PAST_FIRST_STATEMENT: list[str] = []
"""Event ids whose handler got past its first statement (or, for ``Caller``, past its call to the peer)."""
PEER_CALLS: list[str] = []


def _add_row(service: Any, member_id: str) -> None:
    now = utcnow()
    service.db.session.add(Delivery(id=uuid.uuid4(), member_id=uuid.UUID(member_id), journey="inbox-check",
                                    dedupe_key=str(uuid.uuid4()), state="queued", due_at=now, created_at=now,
                                    updated_at=now, attempts=0))


class ReadsFirst(Service):
    """Reads, then writes one row a call: only the inbox keeps a redelivery from adding a second row."""

    name = "inbox_reads_first"
    db = Database()

    @event_handler("members", "member_enrolled")
    def count(self, event: dict) -> None:
        self.db.session.execute(text("SELECT count(*) FROM deliveries")).scalar()
        PAST_FIRST_STATEMENT.append(event["event_id"])
        _add_row(self, event["member_id"])


class Swallows(Service):
    """A handler whose code swallows every error of its first statement, then carries on."""

    name = "inbox_swallows"
    db = Database()

    @event_handler("members", "member_enrolled")
    def count(self, event: dict) -> None:
        try:
            self.db.session.execute(text("SELECT count(*) FROM deliveries")).scalar()
        except Exception:  # noqa: BLE001 - the point of this handler
            pass
        PAST_FIRST_STATEMENT.append(event["event_id"])
        _add_row(self, event["member_id"])


class Answers(Service):
    name = "inbox_peer"

    @rpc
    def note(self, event_id: str) -> bool:
        PEER_CALLS.append(event_id)
        return True


class Caller(Service):
    """Calls a peer before its first statement."""

    name = "inbox_caller"
    db = Database()
    peer = Peer("inbox_peer")

    @event_handler("members", "member_enrolled")
    def count(self, event: dict) -> None:
        self.peer.note(event["event_id"])
        PAST_FIRST_STATEMENT.append(event["event_id"])
        _add_row(self, event["member_id"])


def rows(url: str, member_id: str) -> int:
    return scalar(url, "SELECT count(*) FROM deliveries WHERE journey = 'inbox-check' AND member_id = :m",
                  m=uuid.UUID(member_id).hex if "sqlite" in url else member_id)


def deliver_twice(container: Any, handler: str = "count") -> tuple[str, str]:
    """The same event twice, the second once the first is applied (a relay publishing again after a crash)."""
    service = container.service_name
    event_id, member_id = str(uuid.uuid4()), str(uuid.uuid4())
    body = {"event_id": event_id, "occurred_at": "2026-12-07T00:00:00Z", "member_id": member_id,
            "home_branch": "SH01"}
    dispatch = event_dispatcher({"AMQP_URI": container.config["AMQP_URI"]})
    dispatch("members", "member_enrolled", body)
    wait_for(lambda: rows(container.database_url, member_id) == 1, message="the first delivery applied")
    duplicates = events_handled(service, handler, "duplicate")
    dispatch("members", "member_enrolled", body)
    wait_for(lambda: events_handled(service, handler, "duplicate") == duplicates + 1,
             message="the second delivery acknowledged as a duplicate")
    return event_id, member_id


def test_a_redelivered_event_stops_at_the_handlers_first_statement(start_service, databases, backend):
    container = start_service(ReadsFirst, database_url=databases.fresh(backend, "notifications"))
    event_id, member_id = deliver_twice(container)
    assert PAST_FIRST_STATEMENT.count(event_id) == 1
    assert rows(container.database_url, member_id) == 1
    assert scalar(container.database_url, "SELECT count(*) FROM kit_inbox WHERE event_id = :e", e=event_id) == 1
    assert events_handled("inbox_reads_first", "count", "retried") == 0


@pytest.mark.backends("postgresql")  # on SQLite the handler never runs for a redelivery: nothing to swallow
def test_a_handler_that_swallows_the_refusal_still_ends_as_a_duplicate(start_service, databases):
    container = start_service(Swallows, database_url=databases.fresh("postgresql", "notifications"))
    event_id, member_id = deliver_twice(container)
    assert rows(container.database_url, member_id) == 1
    assert events_handled("inbox_swallows", "count", "retried") == 0
    assert events_handled("inbox_swallows", "count", "dead_lettered") == 0


def test_a_peer_is_not_called_again_for_an_event_already_applied(start_service, databases, backend):
    start_service(Answers, database_url=databases.fresh(backend, "notifications"))
    container = start_service(Caller, database_url=databases.fresh(backend, "notifications"))
    event_id, member_id = deliver_twice(container)
    assert PEER_CALLS.count(event_id) == 1
    assert PAST_FIRST_STATEMENT.count(event_id) == 1
    assert rows(container.database_url, member_id) == 1
