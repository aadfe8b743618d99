"""The cross-service visit audit over 20,000 visits, on PostgreSQL; run explicitly:

    .venv/bin/python -m pytest tests/perf/test_visit_audit_perf.py -s -p no:randomly -m perf

Records, points and members each get 20,000 completed visits (a third refunded: in full, in part, in two
parts) written straight into their tables as their handlers would have left them (the rows are the
subject here, not the events), 20 of the reversals deleted in points (the lost-reversal defect). The audit
runs through records' RPC (pages of 500: one ``points.visit_effects`` and one ``members.visit_activity`` per
page) and must find exactly those 20 visits. Beside it, in the same run: the bare keyset walk of the visits
table (the same pages and query, no peers, nothing stored), the ceiling of the walk's own reading.
The figures go to the terminal; tests/perf/RESULTS.md keeps them with the command.
"""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.kit.caller import Identity
from services.members.models import MemberVisit, MemberVisitRefund
from services.members.service import MembersService
from services.points.models import PointsAccount, PointsPosting, VisitOutcome
from services.points.models import VisitRefund as PointsRefund
from services.points.rules.earning import reversal_due
from services.points.service import PointsService
from services.records import visit_audit
from services.records.models import Patient, Visit
from services.records.models import VisitRefund as RecordsRefund
from services.records.service import RecordsService
from tests.harness import store_for

pytestmark = [pytest.mark.perf, pytest.mark.timeout(1800)]

VISITS = 20_000
MEMBERS = 4_000
BROKEN = 20
BATCH = 500
ADMIN = Identity(kind="staff", subject="perf-admin", role="group_admin", branches=("*",))


def _world(rng: random.Random, start: datetime) -> dict[str, list[dict]]:
    """Rows for the three databases, consistent with each other (ids, amounts, reversals due)."""
    members = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(MEMBERS)]
    rows: dict[str, list[dict]] = {name: [] for name in (
        "patients", "visits", "records_refunds", "accounts", "postings", "points_refunds", "outcomes",
        "member_visits", "member_refunds")}
    for member in members:
        rows["patients"].append({"member_id": member, "home_branch": "SH01", "completed_visits": 0, "paid_visits": 0,
                                 "created_at": start})
        rows["accounts"].append({"member_id": member, "balance": 0, "earned_total": 0, "created_at": start,
                                 "updated_at": start})
    posting_id = 0
    for number in range(VISITS):
        visit_id, member = uuid.UUID(int=rng.getrandbits(128), version=4), members[number % MEMBERS]
        at = start + timedelta(seconds=number * 3)
        paid = rng.randrange(5_000, 200_000, 100)
        rows["visits"].append({
            "id": visit_id, "member_id": member, "branch": "SH01", "kind": "return", "status": "completed",
            "bill_id": f"P-{number}", "currency": "CNY", "total_minor": paid, "qualifying_minor": paid,
            "refunded_minor": 0, "refunded_qualifying_minor": 0, "outpatient_surgery": False, "first_visit": False,
            "first_paid_visit": False, "visit_at": at, "arrived_at": at, "completed_at": at,
            "completed_on": at.date(), "created_at": at, "updated_at": at})
        earned = paid // 100
        posting_id += 1
        earn_id = posting_id
        rows["postings"].append({
            "id": earn_id, "member_id": member, "kind": "earn", "rule": "spend", "points": earned,
            "balance_after": earned, "dedupe_key": f"visit:{visit_id}:0", "source": "visit",
            "source_ref": str(visit_id), "branch": "SH01", "operator": "perf", "basis_minor": paid, "reverses_id": None,
            "created_at": at})
        rows["outcomes"].append({"visit_id": str(visit_id), "member_id": member, "state": "earned",
                                 "earned_points": earned, "reversed_points": 0, "bill_minor": paid,
                                 "completed_seen_at": at, "updated_at": at})
        rows["member_visits"].append({"visit_id": str(visit_id), "member_id": member, "branch": "SH01",
                                      "kind": "return", "day": at.date(), "completed_at": at, "completed": True,
                                      "qualifying_minor": paid, "refunded_minor": 0, "fully_refunded": False})
        refunds = [[], [], [], [(paid, True)], [(paid * 3 // 10, False)], [(paid // 4, False), (paid // 3, False)]][
            number % 6]
        refunded = 0
        for part, (minor, full) in enumerate(refunds):
            refund_id, refunded = uuid.uuid4(), refunded + minor
            rows["records_refunds"].append({
                "id": refund_id, "visit_id": visit_id, "his_refund_id": f"R-{number}-{part}", "request_hash": "x",
                "payments": "[]", "total_minor": minor, "qualifying_minor": minor, "full": full,
                "refunded_at": at + timedelta(minutes=1 + part), "refunded_by": "perf"})
            rows["points_refunds"].append({"refund_id": str(refund_id), "visit_id": str(visit_id), "member_id": member,
                                           "refunded_minor": minor, "full": full, "created_at": at})
            rows["member_refunds"].append({"refund_id": str(refund_id), "visit_id": str(visit_id),
                                           "member_id": member, "refunded_minor": minor, "full": full,
                                           "recorded_at": at})
        if refunds:
            full = any(f for _m, f in refunds)
            due = reversal_due(earned, paid, refunded, full, 0)
            visit, outcome, member_visit = rows["visits"][-1], rows["outcomes"][-1], rows["member_visits"][-1]
            visit["refunded_minor"] = visit["refunded_qualifying_minor"] = refunded
            member_visit["refunded_minor"], member_visit["fully_refunded"] = refunded, full
            if due:
                posting_id += 1
                rows["postings"].append({
                    "id": posting_id, "member_id": member, "kind": "reverse", "rule": None, "points": -due,
                    "balance_after": 0, "basis_minor": None,
                    "dedupe_key": f"reverse:{earn_id}:{due}", "source": "visit", "source_ref": str(visit_id),
                    "branch": "SH01", "operator": "perf", "reverses_id": earn_id, "created_at": at})
                outcome["reversed_points"] = due
    return rows


def _insert(url: str, tables: list[tuple]) -> None:
    store = store_for(url)
    try:
        with store.transaction() as session:
            for table, rows in tables:
                for start in range(0, len(rows), 5000):
                    session.execute(table.insert(), rows[start:start + 5000])
    finally:
        store.dispose()


def test_the_visit_audit_over_20000_visits(start_service, rpc):
    records = start_service(RecordsService, "postgresql", RECORDS_PRACTICE={"audit_batch": BATCH})
    points = start_service(PointsService, "postgresql")
    members = start_service(MembersService, "postgresql", NIGHTLY_AT="off")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    rows = _world(random.Random(15), start)
    # the lost-reversal defect, 20 times: reversals that are not there
    reversals = [posting for posting in rows["postings"] if posting["kind"] == "reverse"]
    lost = random.Random(2).sample(reversals, BROKEN)
    rows["postings"] = [posting for posting in rows["postings"] if posting not in lost]
    loading = time.perf_counter()
    _insert(records.database_url, [(Patient.__table__, rows["patients"]), (Visit.__table__, rows["visits"]),
                                   (RecordsRefund.__table__, rows["records_refunds"])])
    _insert(points.database_url, [(PointsAccount.__table__, rows["accounts"]),
                                  (PointsPosting.__table__, rows["postings"]),
                                  (PointsRefund.__table__, rows["points_refunds"]),
                                  (VisitOutcome.__table__, rows["outcomes"])])
    _insert(members.database_url, [(MemberVisit.__table__, rows["member_visits"]),
                                   (MemberVisitRefund.__table__, rows["member_refunds"])])
    for url in (records.database_url, points.database_url, members.database_url):
        store = store_for(url)
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")
        store.dispose()
    print(f"\nloaded {VISITS} visits ({len(rows['records_refunds'])} refunds, {len(rows['postings'])} postings) "
          f"into three databases in {time.perf_counter() - loading:.1f} s")

    window = visit_audit.Window(start - timedelta(hours=1), datetime.now(UTC), timedelta(minutes=10))
    store = store_for(records.database_url)
    try:
        walked, began, position = 0, time.perf_counter(), None
        while True:  # the baseline: the same pages and query, nobody asked, nothing stored
            with store.transaction() as session:
                page, position = visit_audit.bills_page(session, window, position, BATCH)
            walked += len(page)
            if len(page) < BATCH:
                break
        bare = time.perf_counter() - began
    finally:
        store.dispose()
    assert walked == VISITS

    proxy = rpc(caller=ADMIN, timeout=600)
    began = time.perf_counter()
    run = proxy.records.audit_visits({"since": window.since.isoformat()}, idempotency_key="perf")
    audited = time.perf_counter() - began
    assert run["visits_checked"] == VISITS and run["mismatches"] == BROKEN, run
    assert run["mismatches_by_kind"]["not_reversed"] == BROKEN, run
    found = proxy.records.visit_audit({"limit": 1000})["findings"]
    assert {f["visit_id"] for f in found} == {posting["source_ref"] for posting in lost}

    print(f"bare keyset walk of visits (pages of {BATCH}): {VISITS / bare:,.0f} visits/s ({bare:.2f} s)")
    print(f"visit audit (walk + points + members per page, findings stored): {VISITS / audited:,.0f} visits/s "
          f"({audited:.2f} s; {audited / bare:.1f}x the bare walk); found exactly the {BROKEN} lost reversals")
