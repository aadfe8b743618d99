"""Database round trips of notifications' handlers of a paid visit on PostgreSQL (issue 17; how they are counted:
``tests/integration/test_round_trips.py``): records' ``visit_completed`` (the shipped post-visit advice, a first
visit's survey: composed journeys' planned runs) and points' two ``points_earned`` (spend, visit) into the day's
digest, the second finding the digest the first queued."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from nameko.standalone.events import event_dispatcher

from services.kit.clock import utcnow
from services.notifications.service import NotificationsService
from services.points.events import PointsEarned
from services.records.events import VisitCompleted
from tests.harness import query, service_config, wait_for
from tests.integration.notifications.conftest import announce
from tests.integration.test_round_trips import Trips

HANDLER_CEILINGS = {"on_visit_completed (first visit)": 4, "on_visit_completed (return visit)": 3,
                    "on_points_earned (spend)": 3, "on_points_earned (visit)": 2}
"""As measured (issue 17, 2026-12-07): a return visit 4 (the inbox check; the active journeys with whether the member
has a run going; the advice's run and message in one statement; the commit with the fact, the message's step and the
inbox row), a first visit 5 (the survey's run and message); the day's first posting 4 (the digest queued), the next 3
(attached to it in one statement). Before: 8, 11, 8 and 5. One fewer each since the kit's inbox look-up travels with
the handler's first statement (kit0003): 4, 3, 3, 2."""


@pytest.mark.backends("postgresql")
def test_notifications_handlers_of_a_paid_visit_stay_within_their_round_trips(start_service, amqp_uri):
    notifications = start_service(NotificationsService, "postgresql", NOTIFICATIONS={"scheduler": False})
    dispatch = event_dispatcher(service_config(amqp_uri))

    def deliver(contract: Any, **changes: Any) -> None:
        body = announce(contract, occurred_at=utcnow(), **changes)
        dispatch(contract.producer, contract.event_type, body)
        wait_for(lambda: query(notifications.database_url, "SELECT 1 FROM kit_inbox WHERE event_id = :e",
                               e=body["event_id"]), timeout=15, message=f"notifications to apply {contract.event_type}")

    def paid_visit(member_id: uuid.UUID, first: bool) -> tuple[str, str, str]:
        visit_id, spend, visit = uuid.uuid4(), str(uuid.uuid4().int % 10**12), str(uuid.uuid4().int % 10**12)
        deliver(VisitCompleted, visit_id=visit_id, member_id=member_id, kind="first" if first else "return",
                first_visit=first, completed_at=utcnow())
        for posting_id, rule, points in ((spend, "spend", 250), (visit, "visit", 10)):
            deliver(PointsEarned, member_id=member_id, posting_id=posting_id, points=points, rule=rule,
                    source_ref=str(visit_id), earned_at=utcnow())
        return str(visit_id), spend, visit

    paid_visit(uuid.uuid4(), first=True)  # warm: the journeys read, the pool has connections
    trips = Trips(notifications)
    try:
        first_visit, spend, visit = paid_visit(uuid.uuid4(), first=True)
        return_visit, _spend, _visit = paid_visit(uuid.uuid4(), first=False)
        measured = {"on_visit_completed (first visit)": trips.of(first_visit),
                    "on_visit_completed (return visit)": trips.of(return_visit),
                    "on_points_earned (spend)": trips.of(spend), "on_points_earned (visit)": trips.of(visit)}
    finally:
        trips.close()
    report = {name: len(queries) for name, queries in measured.items()}
    for name, queries in measured.items():
        print(name, *(query[:200].replace("\n", " ") for query in queries), sep="\n  ")
    print(f"\nround trips per handler: {report}")
    over = {name: (count, HANDLER_CEILINGS[name]) for name, count in report.items() if count > HANDLER_CEILINGS[name]}
    assert not over, f"over their ceilings (measured, ceiling): {over}"
