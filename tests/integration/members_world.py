"""Helpers for the members tests: a running members service, events published as records and points
would publish them (docs/events.md), and reads of what the service wrote."""

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
from services.members.service import MembersService
from tests.harness import service_config, store_for, wait_for

ZONE = group_from_config({}).zone
_phones = itertools.count(1)


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
    def publish(self, source: str, event_type: str, payload: dict[str, Any], event_id: str | None = None,
                handler: str | None = None) -> dict[str, Any]:
        """Publish an event; with ``handler``, wait until members handled it (applied or deduplicated)."""
        body = {"event_id": event_id or str(uuid.uuid4()), "occurred_at": isoformat(utcnow()), **payload}
        handler_name = handler
        before = (handled(handler_name, "ok") + handled(handler_name, "duplicate")
                  + handled(handler_name, "dead_lettered")) if handler_name else 0
        self.dispatch(source, event_type, body)
        self.published.append(body)
        if handler_name:
            wait_for(lambda: handled(handler_name, "ok") + handled(handler_name, "duplicate")
                     + handled(handler_name, "dead_lettered") > before, message=f"{handler_name} handled")
        return body

    def visit(self, member_id: str, qualifying_minor: int, kind: str = "return", visit_id: str | None = None,
              completed_at: datetime | None = None, wait: bool = True) -> dict[str, Any]:
        return self.publish("records", "visit_completed", {
            "visit_id": visit_id or f"v-{uuid.uuid4().hex[:12]}", "member_id": member_id, "branch": "SH01",
            "doctor_id": "d-1", "kind": kind, "bill_id": f"b-{uuid.uuid4().hex[:8]}",
            "completed_at": isoformat(completed_at or utcnow()), "currency": "CNY",
            "items": [{"category": "treatment", "code": "T1", "amount_minor": qualifying_minor}],
            "payments": [{"method": "card", "amount_minor": qualifying_minor}],
            "qualifying_minor": qualifying_minor, "first_visit": False, "first_paid_visit": False,
            "referral_source": None}, handler="on_visit_completed" if wait else None)

    def refund(self, member_id: str, visit_id: str, refunded_minor: int, full: bool = False) -> dict[str, Any]:
        return self.publish("records", "visit_refunded", {
            "visit_id": visit_id, "member_id": member_id, "branch": "SH01", "refund_id": f"r-{uuid.uuid4().hex[:12]}",
            "refunded_minor": refunded_minor, "currency": "CNY", "full": full}, handler="on_visit_refunded")

    def cancel(self, member_id: str, visit_id: str) -> dict[str, Any]:
        return self.publish("records", "visit_cancelled", {"visit_id": visit_id, "member_id": member_id,
                                                           "branch": "SH01"}, handler="on_visit_cancelled")

    def top_up(self, member_id: str, amount_minor: int, bonus_minor: int = 0) -> dict[str, Any]:
        return self.publish("points", "topped_up", {
            "member_id": member_id, "topup_id": f"t-{uuid.uuid4().hex[:12]}", "amount_minor": amount_minor,
            "bonus_minor": bonus_minor, "currency": "CNY", "branch": "SH01"}, handler="on_topped_up")

    def earn(self, member_id: str, points: int, posting_id: str | None = None,
             earned_at: datetime | None = None, rule: str = "spend") -> dict[str, Any]:
        earned = earned_at or utcnow()
        return self.publish("points", "points_earned", {
            "member_id": member_id, "posting_id": posting_id or f"p-{uuid.uuid4().hex[:12]}", "points": points,
            "rule": rule, "source_ref": "b-1", "branch": "SH01", "earned_at": isoformat(earned),
            "expires_on": (earned.date() + timedelta(days=400)).isoformat()}, handler="on_points_earned")

    def reverse_points(self, member_id: str, reverses: str, points: int) -> dict[str, Any]:
        return self.publish("points", "points_reversed", {
            "member_id": member_id, "posting_id": f"p-{uuid.uuid4().hex[:12]}", "reverses_posting_id": reverses,
            "points": points, "reason": "refund", "source_ref": "b-1"}, handler="on_points_reversed")

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
