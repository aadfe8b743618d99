"""The cross-service visit audit with real records, members and points: paid visits and refunds give a
clean audit; a reversal posting deleted in points' database (the lost-reversal defect of issue 15) is
reported for exactly that visit; visits still inside the settle window are left out; a key is one run."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from nameko.testing.services import entrypoint_hook
from sqlalchemy import text

from services.kit.errors import Forbidden, Unavailable
from services.points.service import PointsService
from services.records import visit_audit
from tests.harness import query, scalar, store_for, wait_for
from tests.integration.records_support import ADMIN, AUDITOR, FRONT_DESK, HIS, bill, enrol, start_records

# the test waits for every event itself; pages of 4 visits: the walk goes over a page boundary
SETTLED = {"RECORDS_PRACTICE": {"audit_settle_minutes": 0, "audit_batch": 4}}


def _drained(records: Any, members: Any, points: Any) -> None:
    """Every event records announced was applied by members and points, and their own outboxes are empty."""
    announced = scalar(records.database_url, "SELECT count(*) FROM kit_outbox WHERE event_type IN "
                                             "('visit_completed', 'visit_refunded')")
    wait_for(lambda: scalar(records.database_url, "SELECT count(*) FROM kit_outbox WHERE sent_at IS NULL") == 0,
             timeout=30, message="records' outbox to drain")
    for service, consumers in ((members, "('members.on_visit_completed', 'members.on_visit_refunded')"),
                               (points, "('points.on_visit_completed', 'points.on_visit_refunded')")):
        wait_for(lambda s=service, c=consumers: scalar(
            s.database_url, f"SELECT count(*) FROM kit_inbox WHERE consumer IN {c}") == announced,
            timeout=30, message=f"{service.service_name} to apply every visit event")
        wait_for(lambda s=service: scalar(s.database_url, "SELECT count(*) FROM kit_outbox WHERE sent_at IS NULL") == 0,
                 timeout=30, message="outbox to drain")


def _world(start_service: Any, rpc: Any, backend: str, **records_config: Any) -> tuple[Any, Any, Any, Any]:
    records, members = start_records(start_service, backend, **records_config)
    points = start_service(PointsService, backend)
    return records, members, points, rpc()


def _visits(proxy: Any, rpc: Any) -> list[str]:
    """Six paid visits of three members; one refunded in full, one in part, one in two parts."""
    his = rpc(caller=HIS).records
    members = [enrol(proxy, 900 + n) for n in range(3)]
    visits = [his.complete_visit(bill(members[n % 3], f"AUD-{uuid.uuid4().hex[:8]}"))["id"] for n in range(6)]
    his.refund_visit({"refund_id": "AR-1", "visit_id": visits[0], "payments": [{"method": "card", "amount_minor": 20000}]})
    his.refund_visit({"refund_id": "AR-2", "visit_id": visits[1], "payments": [{"method": "card", "amount_minor": 7000}]})
    his.refund_visit({"refund_id": "AR-3", "visit_id": visits[2], "payments": [{"method": "card", "amount_minor": 3000}]})
    his.refund_visit({"refund_id": "AR-4", "visit_id": visits[2], "payments": [{"method": "card", "amount_minor": 4000}]})
    return visits


def test_clean_world_audits_clean_and_a_lost_reversal_is_reported_for_that_visit(start_service, rpc, backend):
    records, members, points, proxy = _world(start_service, rpc, backend, **SETTLED)
    visits = _visits(proxy, rpc)
    _drained(records, members, points)
    admin = rpc(caller=ADMIN).records

    clean = admin.audit_visits({}, idempotency_key="first")
    assert clean["state"] == "finished" and clean["visits_checked"] == 6, clean
    assert clean["mismatches"] == 0 and not any(clean["mismatches_by_kind"].values()), clean
    report = rpc(caller=AUDITOR).records.visit_audit({})
    assert report["audit"]["id"] == clean["id"] and report["findings"] == []

    # the refund race's damage, made by hand: the reversal of visit 1's partial refund never happened
    broken = visits[1]
    reversals = query(points.database_url, "SELECT id, points FROM points_postings WHERE kind = 'reverse' "
                                           "AND source = 'visit' AND source_ref = :v", v=broken)
    assert reversals, "the partial refund was reversed before the damage"
    with_store_delete(points.database_url, [row.id for row in reversals])

    found = admin.audit_visits({}, idempotency_key="second")
    assert found["visits_checked"] == 6 and found["mismatches"] == 1, found
    assert found["mismatches_by_kind"]["not_reversed"] == 1, found
    report = rpc(caller=AUDITOR).records.visit_audit({})
    assert [(f["visit_id"], f["kind"]) for f in report["findings"]] == [(broken, "not_reversed")], report
    finding = report["findings"][0]
    assert finding["expected"] == -sum(row.points for row in reversals) and finding["found"] == 0
    assert finding["reason"].startswith("refunded but not reversed")

    # the same key is the same run; the first run's answer and findings are kept
    assert admin.audit_visits({}, idempotency_key="second")["id"] == found["id"]
    assert rpc(caller=AUDITOR).records.visit_audit({"audit_id": clean["id"]})["findings"] == []


def with_store_delete(url: str, posting_ids: list[int]) -> None:
    """Delete postings straight in points' database (the damage is what this test is about)."""
    store = store_for(url)
    try:
        with store.transaction() as session:
            for posting_id in posting_ids:
                session.execute(text("DELETE FROM points_lot_moves WHERE posting_id = :p"), {"p": posting_id})
                session.execute(text("DELETE FROM points_postings WHERE id = :p"), {"p": posting_id})
    finally:
        store.dispose()


def test_visits_inside_the_settle_window_are_left_out_and_other_roles_are_refused(start_service, rpc):
    records, members, points, proxy = _world(start_service, rpc, "sqlite")  # the default 10-minute window
    _visits(proxy, rpc)
    _drained(records, members, points)
    run = rpc(caller=ADMIN).records.audit_visits({})
    assert run["state"] == "finished" and run["visits_checked"] == 0 and run["mismatches"] == 0, run
    assert run["settle_seconds"] == 600
    with pytest.raises(Forbidden):
        rpc(caller=FRONT_DESK).records.audit_visits({})
    with pytest.raises(Forbidden):
        rpc(caller=FRONT_DESK).records.visit_audit({})


def test_a_refund_made_while_the_audit_runs_is_in_flight_not_a_mismatch(start_service, rpc, backend):
    """The page is read, then the visit is refunded and points reverses it, then points is asked: records'
    page said "not refunded", points says "reversed". The walk reads the visit's refunds again before it
    stores a finding, and counts the visit as unsettled instead."""
    records, members, points, proxy = _world(start_service, rpc, backend, **SETTLED)
    visits = _visits(proxy, rpc)
    _drained(records, members, points)
    his, suite = rpc(caller=HIS).records, rpc()
    late = visits[3]  # not refunded so far

    def points_after_a_refund(asked: list[dict[str, Any]]) -> dict[str, Any]:
        his.refund_visit({"refund_id": "AR-LATE", "visit_id": late,
                          "payments": [{"method": "card", "amount_minor": 20000}]})
        _drained(records, members, points)
        return suite.points.visit_effects(asked)

    now = datetime.now(UTC)
    window = visit_audit.Window(now - timedelta(days=1), now, timedelta(0))
    store = store_for(records.database_url)
    try:
        audit, _new = visit_audit.claim(store, "manual:late", "manual", window, "test", now)
        peers = visit_audit.Peers(points_after_a_refund, suite.members.visit_activity)
        visit_audit.walk(store, audit.id, window, peers, now, 50)
        with store.transaction() as session:
            row = visit_audit.get(session, audit.id)
            assert (row.visits_checked, row.visits_unsettled, row.mismatches) == (5, 1, 0)
    finally:
        store.dispose()


def test_a_run_that_failed_is_run_again_under_its_key_and_the_night_runs_once(start_service, rpc, backend):
    records, members, points, proxy = _world(start_service, rpc, backend, RECORDS_PRACTICE={
        "audit_settle_minutes": 0, "audit_nightly_hour": 0})
    _visits(proxy, rpc)
    _drained(records, members, points)
    points.stop()
    admin = rpc(caller=ADMIN).records
    with pytest.raises(Unavailable):  # points is away: the run fails, and says why
        admin.audit_visits({}, idempotency_key="retry-me")
    (state, error), = query(records.database_url, "SELECT state, error FROM visit_audits")
    assert state == "failed" and "points" in error

    start_service(PointsService, database_url=points.database_url)
    again = admin.audit_visits({}, idempotency_key="retry-me")
    assert again["state"] == "finished" and again["visits_checked"] == 6 and again["mismatches"] == 0, again
    assert scalar(records.database_url, "SELECT count(*) FROM visit_audits") == 1  # the same run, finished

    with entrypoint_hook(records, "nightly_visit_audit") as night:  # the hourly check, twice: one run a day
        night()
        night()
    nightly = query(records.database_url, "SELECT state, visits_checked FROM visit_audits WHERE trigger = 'nightly'")
    assert [tuple(row) for row in nightly] == [("finished", 6)]
