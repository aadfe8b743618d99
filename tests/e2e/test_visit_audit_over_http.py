"""The cross-service visit audit over HTTP: an operator runs it and reads it; the gauges say what it found;
roles without ``ops:audit`` are refused."""

from __future__ import annotations

import uuid

import requests

from tests.harness import scalar, wait_for

SH01 = ("SH01",)


def _paid_and_refunded_visit(suite) -> None:
    """A referred member's first paid visit (the referrer earns a share too), refunded in part."""
    referrer = suite.call("POST", "/v1/members", role="front_desk", branches=SH01, json={
        "full_name": "Audit Referrer", "phone": "13855557777", "birth_date": "1979-02-03", "home_branch": "SH01"},
        headers={"Idempotency-Key": "enrol-referrer"}).json()
    member = suite.call("POST", "/v1/members", role="front_desk", branches=SH01, json={
        "full_name": "Audit Person", "phone": "13855556666", "birth_date": "1980-02-03", "home_branch": "SH01",
        "referral_code": referrer["referral_code"]}, headers={"Idempotency-Key": "enrol-audit"}).json()
    visit = suite.call("POST", "/v1/visits", role="front_desk", branches=SH01,
                       json={"member_id": member["id"], "branch": "SH01"}).json()
    bill = {"bill_id": f"HIS-{uuid.uuid4().hex[:8]}", "member_id": member["id"], "branch": "SH01", "currency": "CNY",
            "items": [{"category": "treatment", "code": "FIL-1", "amount_minor": 50_000}],
            "payments": [{"method": "card", "amount_minor": 50_000}]}
    done = suite.call("POST", f"/v1/visits/{visit['id']}/complete", role="front_desk", branches=SH01, json=bill)
    assert done.status_code == 200, done.text
    refund = suite.call("POST", f"/v1/visits/{visit['id']}/refunds", role="front_desk", branches=SH01,
                        json={"refund_id": "R-AUDIT-1", "payments": [{"method": "card", "amount_minor": 20_000}]},
                        headers={"Idempotency-Key": "refund-audit"})
    assert refund.status_code in (200, 201), refund.text


def test_an_operator_runs_the_visit_audit_reads_it_and_the_gauges_follow(start_suite):
    suite = start_suite(records_config={"RECORDS_PRACTICE": {"audit_settle_minutes": 0}})
    assert suite.call("GET", "/v1/ops/audit/visits").json() == {"audit": None, "findings": [], "next_cursor": None}
    assert suite.call("GET", "/v1/ops/audit/visits?cursor=not-a-cursor").status_code == 422  # even with no run
    _paid_and_refunded_visit(suite)

    def clean_run(key: str):
        run = suite.call("POST", "/v1/ops/audit/visits", json={}, headers={"Idempotency-Key": key})
        assert run.status_code == 200, run.text
        return run.json() if run.json()["visits_checked"] == 1 and run.json()["mismatches"] == 0 else None
    # the refund's events may still be on their way for a moment (the settle window is 0 here): a fresh key each try
    keys = (f"audit-{n}" for n in range(1000))
    run = wait_for(lambda: clean_run(next(keys)), timeout=15, interval=0.3, message="a clean audit of the visit")
    assert run["state"] == "finished" and run["settle_seconds"] == 0
    beneficiaries = scalar(suite.database_urls["points"], "SELECT count(DISTINCT member_id) FROM points_postings "
                                                           "WHERE source = 'visit' AND kind = 'earn'")
    assert beneficiaries == 2  # the referrer's share is part of what the visit earned, and reversed with it
    report = suite.call("GET", "/v1/ops/audit/visits", role="auditor")
    assert report.status_code == 200 and report.json()["audit"]["id"] == run["id"] and report.json()["findings"] == []
    assert suite.call("GET", f"/v1/ops/audit/visits?audit_id={run['id']}&limit=5").json()["audit"]["id"] == run["id"]

    metrics = requests.get(f"http://127.0.0.1:{suite.metrics_ports['records']}/metrics", timeout=5).text
    assert 'careloop_audit_mismatches{kind="not_reversed"} 0.0' in metrics
    assert "careloop_audit_last_run_timestamp_seconds " in metrics

    for role in ("front_desk", "branch_manager", "clinician", "monitoring"):
        assert suite.call("GET", "/v1/ops/audit/visits", role=role).status_code == 403, role
        refused = suite.call("POST", "/v1/ops/audit/visits", role=role, json={}, headers={"Idempotency-Key": "x"})
        assert refused.status_code == 403, role
    for bad in ("limit=0", "cursor=not-a-cursor", "cursor=eyJ4IjoxfQ", "audit_id=nope"):
        assert suite.call("GET", f"/v1/ops/audit/visits?{bad}").status_code == 422, bad
