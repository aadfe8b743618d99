"""Refunds of visits whose points are locked (pending) arriving while the daily job releases those holds, on two
points replicas (PostgreSQL). The release takes each visit's lock (``points.visit:<id>``) like the refund
does, so a refund sees a hold either still locked (and cancels its share: no posting, no debt) or released
(and reverses the earn): never both, never neither. The test proves the refunds and the release really
waited for each other, then checks every visit's lines against the reversal rule, the pending balances at
0, no debt, and reconciliation of both ledgers.

PostgreSQL only: on SQLite the kit runs one transaction at a time per file. ``CARELOOP_RACE_VISITS`` changes
the number of visits (default 200).
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime

import pytest
from nameko.standalone.events import event_dispatcher

from services.kit.clock import isoformat, utcnow
from services.members.events import MemberEnrolled
from services.points.service import PointsService
from services.records.events import VisitCompleted, VisitRefunded
from tests.harness import scalar, service_config, wait_for
from tests.integration.overlap import LockWaits, advisory_keys
from tests.integration.points_world import wire

VISITS = int(os.environ.get("CARELOOP_RACE_VISITS", "200"))
MEMBERS = max(VISITS // 5, 1)
# released on 2027-03-15 with a 14-day window: a day the nightly timer (which runs for today) never reaches first
COMPLETED_AT = datetime(2027, 3, 1, 2, tzinfo=UTC)
RELEASE_DAY = "2027-03-15"
PENDING = {"pending_days": 14}


def _published(publish, contract, **changes) -> str:
    event_id = str(uuid.uuid4())
    publish(contract.producer, contract.event_type, {"event_id": event_id, "occurred_at": isoformat(utcnow()),
                                                     **wire(contract, **changes)})
    return event_id


@pytest.mark.backends("postgresql")
@pytest.mark.timeout(600)
def test_refunds_racing_the_release_of_their_pending_points_cancel_or_reverse_exactly_once(start_service, amqp_uri,
                                                                                           rpc):
    first = start_service(PointsService, "postgresql", POINTS_PROGRAMME=PENDING)
    start_service(PointsService, database_url=first.database_url, POINTS_PROGRAMME=PENDING)  # a second replica
    url = first.database_url
    publish = event_dispatcher(service_config(amqp_uri))
    proxy = rpc()

    members = [str(uuid.uuid4()) for _ in range(MEMBERS)]
    for member_id in members:
        _published(publish, MemberEnrolled, member_id=uuid.UUID(member_id), referrer_id=None, source="desk",
                   preferred_language="en")
    wait_for(lambda: scalar(url, "SELECT count(*) FROM points_members WHERE enrolled_at IS NOT NULL") == MEMBERS,
             timeout=60, message="points to know every member")
    visits = {}
    for number in range(VISITS):
        visit_id, member_id, paid = str(uuid.uuid4()), members[number % MEMBERS], 100_00 + number * 10
        visits[visit_id] = (member_id, paid, number % 2 == 0)  # every other visit refunded in full, else 30 %
        _published(publish, VisitCompleted, visit_id=uuid.UUID(visit_id), member_id=uuid.UUID(member_id),
                   doctor_id="d1", bill_id=f"B-{visit_id}", completed_at=COMPLETED_AT, qualifying_minor=paid,
                   items=[{"category": "treatment", "code": "T1", "amount_minor": paid}],
                   payments=[{"method": "cash", "amount_minor": paid}])
    wait_for(lambda: scalar(url, "SELECT count(*) FROM points_holds") == 2 * VISITS, timeout=180, interval=0.2,
             message="every visit's two lines locked")
    assert scalar(url, "SELECT count(*) FROM points_postings WHERE source = 'visit'") == 0

    keys = advisory_keys(url, [f"points.visit:{visit_id}" for visit_id in visits])
    with LockWaits(url) as waits:
        proxy.points.run_daily_jobs.call_async({"day": RELEASE_DAY})  # its answer may outlast the RPC timeout
        for visit_id, (member_id, paid, full) in visits.items():
            _published(publish, VisitRefunded, visit_id=uuid.UUID(visit_id), member_id=uuid.UUID(member_id),
                       refund_id=uuid.uuid4(), refunded_minor=paid if full else paid * 3 // 10, full=full)
        wait_for(lambda: scalar(url, "SELECT count(*) FROM kit_job_runs WHERE job = 'points_pending_release' "
                                     "AND run_key = :day AND finished_at IS NOT NULL", day=RELEASE_DAY) == 1,
                 timeout=180, interval=0.2, message="the release job to finish")
        wait_for(lambda: scalar(url, "SELECT count(*) FROM points_visit_refunds") == VISITS, timeout=180,
                 interval=0.2, message="every refund applied")
        wait_for(lambda: scalar(url, "SELECT count(*) FROM kit_inbox WHERE consumer = 'points.on_visit_refunded'")
                 == VISITS, timeout=60, interval=0.2, message="every refund committed")
    waited = waits.on(keys)
    released = scalar(url, "SELECT count(*) FROM points_holds WHERE released_posting_id IS NOT NULL")
    print(f"\n{VISITS} visits: {len(waited)} waited for the visit lock; {released} of {2 * VISITS} lines released, "
          f"the others cancelled in full before the release")
    assert waited, "no refund and release waited for each other: they did not overlap"

    effects = proxy.points.visit_effects([{"visit_id": visit_id, "refunded_minor": paid if full else paid * 3 // 10,
                                           "full": full} for visit_id, (_m, paid, full) in visits.items()])["items"]
    wrong = [e for e in effects if e["reversed_points"] != e["reversal_due"] or e["earned_points"] == 0]
    assert not wrong, f"{len(wrong)} of {VISITS} visits not taken back exactly, e.g. {wrong[0]}"
    assert scalar(url, "SELECT coalesce(sum(pending), 0) FROM points_accounts") == 0
    assert scalar(url, "SELECT min(balance) FROM points_accounts") >= 0  # nothing was spent: never any debt
    assert scalar(url, "SELECT count(*) FROM points_holds WHERE remaining > 0") == 0
    assert proxy.points.reconcile()["ok"]
