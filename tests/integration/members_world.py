"""Helpers for the members tests: a running members service, events published as records and points
publish them (built from their contracts' samples, checked by ``EVENTS.wire``), and reads of what the
service wrote."""

from __future__ import annotations

import itertools
import json
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from nameko.standalone.events import event_dispatcher
from prometheus_client import REGISTRY
from sqlalchemy import text

from services.kit.clock import isoformat, local_date, utcnow
from services.kit.config import group_from_config
from services.kit.contracts import Event
from services.members.service import MembersService
from services.points.events import EVENTS as POINTS_EVENTS
from services.points.events import PointsEarned, PointsReversed, ToppedUp, VisitPointsEarned
from services.records.events import EVENTS as RECORDS_EVENTS
from services.records.events import VisitCancelled, VisitCompleted, VisitRefunded
from tests.harness import service_config, store_for, wait_for

ZONE = group_from_config({}).zone
_phones = itertools.count(1)


OUTCOMES = ("ok", "duplicate", "dead_lettered")
PRODUCERS = {"records": RECORDS_EVENTS, "points": POINTS_EVENTS}


def wire(contract: type[Event], **changes: Any) -> dict[str, Any]:
    """``contract``'s sample with ``changes`` as its producer would put it on the wire (with its envelope):
    a test cannot send what no producer sends."""
    payload = PRODUCERS[contract.producer].wire(contract.event_type, {**contract.sample, **changes})
    return {"event_id": str(uuid.uuid4()), "occurred_at": isoformat(utcnow()), **payload}


def posting_number() -> str:
    """A points posting (or wallet posting) number, as points numbers them: digits, unique enough."""
    return str(uuid.uuid4().int % 10**15)


def _uuid(value: Any) -> uuid.UUID:
    return uuid.uuid4() if value is None else value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def today() -> date:
    return local_date(utcnow(), ZONE)


def handled(handler: str, outcome: str = "ok") -> float:
    """How many events ``handler`` of members has handled with ``outcome`` in this process so far."""
    value = REGISTRY.get_sample_value("careloop_events_handled_total",
                                      {"service": "members", "handler": handler, "outcome": outcome})
    return value or 0.0


@dataclass
class World:
    container: Any
    proxy: Any
    dispatch: Any
    url: str
    published: list[dict[str, Any]] = field(default_factory=list)

    # --- members ---
    def enrol(self, branch: str = "SH01", **extra: Any) -> str:
        number = next(_phones)
        member = self.proxy.members.enrol({
            "full_name": f"Test Member{number}", "phone": f"1370{number:07d}", "birth_date": "1985-06-15",
            "home_branch": branch, **extra})
        return member["id"]

    # --- events, as the producing services publish them ---
    def send(self, source: str, event_type: str, body: dict[str, Any], handler: str | None = None) -> dict[str, Any]:
        """Send a body as it goes on the wire (``event_id`` added if absent); with ``handler``, wait until members
        handled it (applied, deduplicated or parked)."""
        body = {"event_id": str(uuid.uuid4()), **body}
        before = sum(handled(handler, outcome) for outcome in OUTCOMES) if handler else 0
        self.dispatch(source, event_type, body)
        self.published.append(body)
        if handler:
            wait_for(lambda: sum(handled(handler, outcome) for outcome in OUTCOMES) > before,
                     message=f"{handler} handled")
        return body

    def publish(self, contract: type[Event], handler: str | None = None, **changes: Any) -> dict[str, Any]:
        """Publish ``contract``'s sample with ``changes`` (domain values), checked as its producer checks it."""
        return self.send(contract.producer, contract.event_type, wire(contract, **changes), handler)

    def visit(self, member_id: str, qualifying_minor: int, kind: str = "return", visit_id: Any = None,
              completed_at: datetime | None = None, wait: bool = True) -> dict[str, Any]:
        return self.publish(
            VisitCompleted, "on_visit_completed" if wait else None, visit_id=_uuid(visit_id),
            member_id=uuid.UUID(member_id), kind=kind, bill_id=f"b-{uuid.uuid4().hex[:8]}",
            completed_at=completed_at or utcnow(),
            items=[{"category": "treatment", "code": "T1", "amount_minor": qualifying_minor}],
            payments=[{"method": "card", "amount_minor": qualifying_minor}], qualifying_minor=qualifying_minor)

    def refund(self, member_id: str, visit_id: Any, refunded_minor: int, full: bool = False) -> dict[str, Any]:
        return self.publish(VisitRefunded, "on_visit_refunded", visit_id=_uuid(visit_id),
                            member_id=uuid.UUID(member_id), refund_id=uuid.uuid4(), refunded_minor=refunded_minor,
                            full=full)

    def cancel(self, member_id: str, visit_id: Any) -> dict[str, Any]:
        return self.publish(VisitCancelled, "on_visit_cancelled", visit_id=_uuid(visit_id),
                            member_id=uuid.UUID(member_id))

    def top_up(self, member_id: str, amount_minor: int, bonus_minor: int = 0) -> dict[str, Any]:
        return self.publish(ToppedUp, "on_topped_up", member_id=uuid.UUID(member_id), topup_id=posting_number(),
                            amount_minor=amount_minor, bonus_minor=bonus_minor)

    def earn(self, member_id: str, points: int, posting_id: str | None = None,
             earned_at: datetime | None = None, rule: str = "spend") -> dict[str, Any]:
        earned = earned_at or utcnow()
        return self.publish(PointsEarned, "on_points_earned", member_id=uuid.UUID(member_id),
                            posting_id=posting_id or posting_number(), points=points, rule=rule, earned_at=earned,
                            expires_on=earned.date() + timedelta(days=400))

    def earn_visit(self, member_id: str, lines: list[tuple[int, str]], earned_at: datetime | None = None,
                   posting_ids: list[str] | None = None) -> dict[str, Any]:
        """A visit's earn as points announces it: one ``visit_points_earned`` with a posting a ``(points, rule)``."""
        earned = earned_at or utcnow()
        ids = posting_ids or [posting_number() for _ in lines]
        return self.publish(VisitPointsEarned, "on_visit_points_earned", member_id=uuid.UUID(member_id),
                            visit_id=uuid.uuid4(), earned_at=earned, expires_on=earned.date() + timedelta(days=400),
                            postings=[{"posting_id": posting_id, "points": points, "rule": rule}
                                      for posting_id, (points, rule) in zip(ids, lines, strict=True)])

    def reverse_points(self, member_id: str, reverses: str, points: int) -> dict[str, Any]:
        return self.publish(PointsReversed, "on_points_reversed", member_id=uuid.UUID(member_id),
                            posting_id=posting_number(), reverses_posting_id=reverses, points=points)

    # --- what the service wrote ---
    def rows(self, sql: str, **params: Any) -> list[Any]:
        # through the store's green gate: on SQLite a raw connection would block the whole process on
        # the write lock while the service's outbox relay (same process) holds it
        store = store_for(self.url)
        try:
            with store.transaction() as session:
                return list(session.execute(text(sql), params))
        finally:
            store.dispose()

    def events(self, event_type: str, **match: Any) -> list[dict[str, Any]]:
        """The events of ``event_type`` members wrote to its outbox, oldest first, matching ``match``."""
        found = [json.loads(payload) for (payload,) in self.rows(
            "SELECT payload FROM kit_outbox WHERE event_type = :t ORDER BY id", t=event_type)]
        return [event for event in found if all(event.get(key) == value for key, value in match.items())]

    def night(self, day: date, **kwargs: Any) -> dict[str, Any]:
        return self.proxy.members.run_nightly(day.isoformat(), **kwargs)


def start_world(start_service: Any, rpc: Any, backend: str, amqp_uri: str, **overrides: Any) -> World:
    overrides.setdefault("NIGHTLY_AT", "off")
    container = start_service(MembersService, backend, **overrides)
    return World(container, rpc(), event_dispatcher(service_config(amqp_uri)), container.database_url)
