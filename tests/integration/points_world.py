"""A running members + points pair for the points tests, and the few helpers they share.

Members are enrolled through the members service's RPC (points learns of them from ``member_enrolled``
or, when that event has not arrived yet, by asking members); other services' events are built from their
producer's contract (its ``sample``, changed as a test needs, checked by ``EVENTS.wire``: a test cannot send
what no producer sends), published as that producer would, and a helper waits until points has applied each.
"""

from __future__ import annotations

import itertools
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nameko.standalone.events import event_dispatcher
from sqlalchemy import text

from services.kit.clock import isoformat, utcnow
from services.kit.contracts import Contracts, Event
from services.members import events as members_events
from services.members.service import MembersService
from services.points.service import PointsService
from services.records import events as records_events
from services.records.events import VisitCompleted, VisitRefunded
from tests.harness import service_config, store_for, wait_for

_numbers = itertools.count(1)
_PRODUCERS: dict[str, Contracts] = {"members": members_events.EVENTS, "records": records_events.EVENTS}


def wire(contract: type[Event], **changes: Any) -> dict[str, Any]:
    """The body ``contract``'s producer sends: its sample with ``changes`` (domain values), checked and dumped."""
    return _PRODUCERS[contract.producer].wire(contract.event_type, {**contract.sample, **changes})


def moment(text: str) -> datetime:
    """``"2026-11-20T02:00:00Z"`` as an aware datetime."""
    return datetime.fromisoformat(text)


@dataclass
class World:
    points: Any  # the points container
    members: Any
    proxy: Any  # a cluster proxy acting as the suite itself
    amqp_uri: str

    @classmethod
    def start(cls, start_service: Any, rpc: Any, backend: str, amqp_uri: str, **points_config: Any) -> World:
        members = start_service(MembersService, backend)
        points = start_service(PointsService, backend, **points_config)
        return cls(points, members, rpc(), amqp_uri)

    @property
    def url(self) -> str:
        return self.points.database_url

    def enrol(self, referral_code: str | None = None, branch: str = "SH01") -> dict[str, Any]:
        number = next(_numbers)
        member = {"full_name": f"Points Tester {number}", "phone": f"1390013{number:04d}",
                  "birth_date": "1990-01-01", "home_branch": branch}
        if referral_code:
            member["referral_code"] = referral_code
        return self.proxy.members.enrol(member)

    def member(self) -> str:
        return self.enrol()["id"]

    def known_to_points(self, member_id: str) -> None:
        """Wait until points has applied the member's ``member_enrolled`` (until then points asks members)."""
        store = store_for(self.members.database_url)
        try:
            with store.transaction() as session:
                event_id = session.execute(text(
                    "SELECT event_id FROM kit_outbox WHERE event_type = 'member_enrolled' AND payload LIKE :m"),
                    {"m": f"%{member_id}%"}).scalar_one()
        finally:
            store.dispose()
        wait_for(lambda: self.scalar("SELECT count(*) FROM kit_inbox WHERE event_id = :e", e=event_id),
                 timeout=15, message="points to apply member_enrolled")

    def deliver(self, contract: type[Event], **changes: Any) -> str:
        """Publish ``contract``'s sample with ``changes`` as its producer would, and wait until points has applied
        it (its inbox row)."""
        event_id = str(uuid.uuid4())
        event_dispatcher(service_config(self.amqp_uri))(contract.producer, contract.event_type, {
            "event_id": event_id, "occurred_at": isoformat(utcnow()), **wire(contract, **changes)})
        wait_for(lambda: self.scalar("SELECT count(*) FROM kit_inbox WHERE event_id = :e", e=event_id),
                 timeout=15, message=f"points to apply {contract.event_type}")
        return event_id

    def visit(self, member_id: str, paid_minor: int, visit_id: str | None = None,
              completed_at: str = "2026-11-20T02:00:00Z", **facts: Any) -> str:
        """A completed visit paid ``paid_minor`` in cash (unless ``payments`` say otherwise)."""
        visit_id = visit_id or str(uuid.uuid4())
        bill = {"doctor_id": "d1", "bill_id": f"B-{visit_id}", "qualifying_minor": paid_minor,
                "items": [{"category": "treatment", "code": "T1", "amount_minor": paid_minor}],
                "payments": [{"method": "cash", "amount_minor": paid_minor}]}
        self.deliver(VisitCompleted, **{**bill, "visit_id": uuid.UUID(visit_id), "member_id": uuid.UUID(member_id),
                                        "completed_at": moment(completed_at), **facts})
        return visit_id

    def refund(self, member_id: str, visit_id: str, refunded_minor: int, full: bool = False) -> None:
        self.deliver(VisitRefunded, visit_id=uuid.UUID(visit_id), member_id=uuid.UUID(member_id),
                     refund_id=uuid.uuid4(), refunded_minor=refunded_minor, full=full)

    def reward(self, price: int, stock: int | None = 100, **extra: Any) -> dict[str, Any]:
        body = {"code": f"R{next(_numbers)}", "name": "Electric toothbrush", "kind": "product",
                "points_price": price, "stock": stock, **extra}
        return self.proxy.points.create_reward(body)

    def give(self, member_id: str, points: int, key: str | None = None) -> dict[str, Any]:
        """A manager's adjustment: a quick way to a balance."""
        return self.proxy.points.earn(member_id, {"rule": "adjust", "points": points, "reason": "test balance",
                                                  "source_ref": "test", "branch": "SH01"},
                                      idempotency_key=key or uuid.uuid4().hex)

    def balance(self, member_id: str) -> int:
        return self.proxy.points.balance(member_id)["balance"]

    def rows(self, sql: str, **params: Any) -> list[Any]:
        store = store_for(self.url)
        try:
            # through the store's gate: on SQLite a connection of our own would block the process
            with store.transaction() as session:
                return list(session.execute(text(sql), params))
        finally:
            store.dispose()

    def execute(self, sql: str, **params: Any) -> None:
        """Change storage behind the service's back (only for tests about storage)."""
        store = store_for(self.url)
        try:
            with store.transaction() as session:
                session.execute(text(sql), params)
        finally:
            store.dispose()

    def scalar(self, sql: str, **params: Any) -> Any:
        return self.rows(sql, **params)[0][0]

    def events(self, event_type: str) -> list[dict[str, Any]]:
        return [json.loads(payload) for (payload,) in self.rows(
            "SELECT payload FROM kit_outbox WHERE event_type = :t ORDER BY id", t=event_type)]

    def earned(self) -> list[dict[str, Any]]:
        """Every earn posting points announced, oldest first, as a ``points_earned`` says it: the single ones, and
        each line of a visit's ``visit_points_earned``."""
        found = []
        for event_type, payload in self.rows("SELECT event_type, payload FROM kit_outbox WHERE event_type IN "
                                             "('points_earned', 'visit_points_earned') ORDER BY id"):
            event = json.loads(payload)
            if event_type == "points_earned":
                found.append(event)
                continue
            common = {"member_id": event["member_id"], "source_ref": event["visit_id"], "branch": event["branch"],
                      "earned_at": event["earned_at"], "expires_on": event["expires_on"]}
            found.extend({**common, **line} for line in event["postings"])
        return found

    def postings(self, member_id: str) -> list[dict[str, Any]]:
        """All of a member's postings, oldest first (through the paginated history)."""
        found, cursor = [], None
        while True:
            page = self.proxy.points.history(member_id, limit=100, cursor=cursor)
            found.extend(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                return list(reversed(found))

    def reconciled(self, member_id: str | None = None) -> dict[str, Any]:
        return self.proxy.points.reconcile(member_id)


def member_key(url: str, member_id: str) -> str:
    """How a member id is stored in ``url``'s database (SQLite keeps UUIDs as 32 hex digits)."""
    return uuid.UUID(member_id).hex if url.startswith("sqlite") else member_id
