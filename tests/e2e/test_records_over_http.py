"""Records through the gateway, as clinicians, the desk, customer service, managers, auditors and the HIS
would use it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import text

from tests.harness import store_for

SH01 = ("SH01",)
REASON = {"X-Access-Reason": "treatment planning"}


def enrol(suite, number: int) -> str:
    response = suite.call("POST", "/v1/members", json={"full_name": f"Http Patient{number}",
                                                       "phone": f"1390013{number:04d}", "birth_date": "1990-01-01",
                                                       "home_branch": "SH01"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def his_bill(member_id: str, bill_id: str) -> dict:
    return {"bill_id": bill_id, "member_id": member_id, "branch": "SH01", "doctor_id": "dr-wang", "currency": "CNY",
            "items": [{"category": "treatment", "code": "RCT1", "amount_minor": 80000}],
            "payments": [{"method": "card", "amount_minor": 60000}, {"method": "stored_value_bonus",
                                                                     "amount_minor": 20000}]}


def count(suite, sql: str) -> int:
    store = store_for(suite.database_urls["records"])
    try:
        with store.transaction() as session:
            return session.execute(text(sql)).scalar_one()
    finally:
        store.dispose()


def test_the_his_bills_a_visit_once_and_a_clinician_reads_the_record_audited(suite):
    member_id = enrol(suite, 1)
    first = suite.call("POST", "/v1/his/bills", role="integration", branches=SH01, json=his_bill(member_id, "H-1"))
    again = suite.call("POST", "/v1/his/bills", role="integration", branches=SH01, json=his_bill(member_id, "H-1"))
    assert first.status_code == again.status_code == 200, first.text
    assert again.json() == first.json() and first.json()["qualifying_minor"] == 60000
    assert count(suite, "SELECT count(*) FROM visits") == 1
    assert count(suite, "SELECT count(*) FROM kit_outbox WHERE event_type = 'visit_completed'") == 1
    assert suite.call("POST", "/v1/his/bills", role="front_desk", branches=SH01,
                      json=his_bill(member_id, "H-2")).status_code == 403  # the webhook is the HIS's

    changed = suite.call("PATCH", f"/v1/members/{member_id}/record", role="clinician", branches=SH01,
                         headers={**REASON, "Idempotency-Key": "p-1"},
                         json={"allergies": [{"substance": "Lidocaine", "severity": "moderate"}]})
    assert changed.status_code == 200, changed.text
    record = suite.call("GET", f"/v1/members/{member_id}/record", role="clinician", branches=SH01, headers=REASON)
    assert record.status_code == 200
    body = record.json()
    assert body["profile"]["allergies"][0]["substance"] == "Lidocaine"
    assert [v["bill_id"] for v in body["visits"]["items"]] == ["H-1"]
    assert [t["state"] for t in body["open_follow_ups"]] == ["treatment_finished"]
    no_reason = suite.call("GET", f"/v1/members/{member_id}/record", role="clinician", branches=SH01)
    assert no_reason.status_code == 422 and "reason" in no_reason.json()["error"]["fields"]
    by_query = suite.call("GET", f"/v1/members/{member_id}/chart?reason=pre-op%20check", role="clinician",
                          branches=SH01)
    assert by_query.status_code == 200 and by_query.json()["teeth"] == []

    assert suite.call("GET", f"/v1/members/{member_id}/record", role="front_desk", branches=SH01,
                      headers=REASON).status_code == 403
    trail = suite.call("GET", f"/v1/audit?member_id={member_id}", role="auditor")
    assert trail.status_code == 200
    assert [(e["action"], e["resource"], e["reason"]) for e in trail.json()["items"]] == [
        ("read", "chart", "pre-op check"), ("read", "record", "treatment planning"),
        ("write", "profile", "treatment planning")]
    assert suite.call("GET", "/v1/audit", role="clinician", branches=SH01).status_code == 403
    visits = suite.call("GET", f"/v1/members/{member_id}/visits", role="front_desk", branches=SH01)
    assert visits.status_code == 200 and visits.json()["items"][0]["total_minor"] == 80000


def test_two_desks_booking_one_slot_one_gets_409(suite):
    anna, bo = enrol(suite, 2), enrol(suite, 3)
    tomorrow = (datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date() + timedelta(days=1)).isoformat()
    published = suite.call("POST", "/v1/appointments/slots", role="front_desk", branches=SH01,
                           json={"branch": "SH01", "doctor_id": "dr-wang", "on": tomorrow, "start": "15:00",
                                 "end": "16:00", "slot_minutes": 30})
    assert published.status_code == 200, published.text
    first, second = published.json()["items"]
    booked = suite.call("POST", "/v1/appointments", role="front_desk", branches=SH01,
                        json={"member_id": anna, "slot_id": first["id"]}, headers={"Idempotency-Key": "b-1"})
    assert booked.status_code == 201, booked.text
    taken = suite.call("POST", "/v1/appointments", role="customer_service", branches=SH01,
                       json={"member_id": bo, "slot_id": first["id"]})
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "conflict"
    free = suite.call("GET", f"/v1/appointments/slots?branch=SH01&on={tomorrow}", role="front_desk", branches=SH01)
    assert [s["id"] for s in free.json()["items"]] == [second["id"]]
    moved = suite.call("POST", f"/v1/appointments/{booked.json()['id']}/reschedule", role="front_desk",
                       branches=SH01, json={"slot_id": second["id"]})
    assert moved.status_code == 200 and moved.json()["slot_id"] == second["id"]
    cancelled = suite.call("POST", f"/v1/appointments/{booked.json()['id']}/cancel", role="front_desk",
                           branches=SH01, json={"reason": "travelling"})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    listed = suite.call("GET", f"/v1/appointments?member_id={anna}", role="clinician", branches=SH01)
    assert [a["cancel_reason"] for a in listed.json()["items"]] == ["travelling"]


def test_follow_ups_feedback_and_kpis_for_the_people_who_work_them(suite):
    member_id = enrol(suite, 4)
    visit = suite.call("POST", "/v1/his/bills", role="integration", branches=SH01,
                       json=his_bill(member_id, "H-10")).json()
    queue = suite.call("GET", "/v1/follow-ups?branch=SH01", role="customer_service", branches=SH01)
    assert queue.status_code == 200
    (task,) = queue.json()["items"]
    done = suite.call("POST", f"/v1/follow-ups/{task['id']}/outcome", role="customer_service", branches=SH01,
                      json={"outcome": "reached", "notes": "Doing well"})
    assert done.status_code == 200 and done.json()["status"] == "done"
    assert suite.call("GET", "/v1/follow-ups?branch=SH01", role="front_desk", branches=SH01).status_code == 403

    survey = suite.call("POST", "/v1/feedback", role="integration", json={
        "member_id": member_id, "kind": "survey", "visit_id": visit["id"], "satisfaction": "satisfied", "nps": 10})
    assert survey.status_code == 201, survey.text
    complaint = suite.call("POST", "/v1/feedback", role="front_desk", branches=SH01, json={
        "member_id": member_id, "kind": "complaint", "branch": "SH01", "urgent": True, "comment": "Billing error"})
    assert complaint.status_code == 201
    open_complaints = suite.call("GET", "/v1/feedback/complaints?branch=SH01", role="customer_service",
                                 branches=SH01)
    assert [c["id"] for c in open_complaints.json()["items"]] == [complaint.json()["id"]]
    answered = suite.call("POST", f"/v1/feedback/{complaint.json()['id']}/response", role="customer_service",
                          branches=SH01, json={"response": "Refund on its way"})
    assert answered.status_code == 200 and answered.json()["status"] == "responded"

    today = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()
    kpis = suite.call("GET", f"/v1/kpis?period=month&on={today}", role="branch_manager", branches=SH01)
    assert kpis.status_code == 200, kpis.text
    (sh01,) = kpis.json()["branches"]
    assert (sh01["branch"], sh01["figures"]["completed_visits"], sh01["figures"]["nps"]) == ("SH01", 1, 100)
    assert suite.call("GET", f"/v1/kpis?period=month&on={today}&branch=SH02", role="branch_manager",
                      branches=SH01).status_code == 403
    assert suite.call("GET", f"/v1/kpis?period=month&on={today}", role="front_desk",
                      branches=SH01).status_code == 403


def test_every_records_route_needs_credentials_and_is_in_the_api_document(suite):
    member = "00000000-0000-0000-0000-000000000000"
    for method, path in (("GET", f"/v1/members/{member}/record"), ("PATCH", f"/v1/members/{member}/record"),
                         ("GET", f"/v1/members/{member}/chart"), ("POST", "/v1/his/bills"),
                         ("POST", "/v1/appointments"), ("GET", "/v1/follow-ups"), ("GET", "/v1/kpis"),
                         ("GET", "/v1/audit"), ("POST", "/v1/feedback")):
        assert suite.call(method, path, role=None, json={}).status_code == 401, (method, path)
    spec = suite.call("GET", "/openapi.json", role=None).json()
    assert {"/v1/members/{member_id}/record", "/v1/members/{member_id}/chart", "/v1/members/{member_id}/visits",
            "/v1/members/{member_id}/care-plan", "/v1/appointments", "/v1/follow-ups", "/v1/feedback", "/v1/kpis",
            "/v1/audit", "/v1/his/bills"} <= set(spec["paths"])
    record = spec["paths"]["/v1/members/{member_id}/record"]["get"]
    assert record["x-roles"] == ["clinician", "integration"]
    assert spec["paths"]["/v1/his/bills"]["post"]["x-roles"] == ["integration"]


def test_a_signed_his_bill_and_refund_complete_and_refund_once_within_the_integrations_branches(suite):
    member_id = enrol(suite, 7)
    his = suite.integration("integration", SH01)
    bill = his_bill(member_id, "H-SIGNED-1")
    # a redelivery is signed afresh (the same signature twice is a replay): its timestamp is set apart from
    # the first's, not read from the clock again (two seconds into a slow first request they were equal)
    signed_at = int(time.time())
    first = suite.signed("POST", "/v1/webhooks/bills", bill, integration=his, timestamp=signed_at,
                         headers={"Idempotency-Key": "hb-1"})
    again = suite.signed("POST", "/v1/webhooks/bills", bill, integration=his, timestamp=signed_at - 2,
                         headers={"Idempotency-Key": "hb-2"})
    assert first.status_code == again.status_code == 200, first.text
    assert again.json()["id"] == first.json()["id"] and first.json()["status"] == "completed"
    refund = {"refund_id": "R-SIGNED-1", "bill_id": "H-SIGNED-1", "payments": [{"method": "card", "amount_minor": 60000}]}
    refunded = suite.signed("POST", "/v1/webhooks/refunds", refund, integration=his, timestamp=signed_at,
                            headers={"Idempotency-Key": "hr-1"})
    assert refunded.status_code == 200, refunded.text
    assert suite.signed("POST", "/v1/webhooks/refunds", refund, integration=his, timestamp=signed_at - 2,
                        headers={"Idempotency-Key": "hr-2"}).status_code == 200
    assert count(suite, "SELECT count(*) FROM kit_outbox WHERE event_type = 'visit_refunded'") == 1
    elsewhere = suite.signed("POST", "/v1/webhooks/bills", {**his_bill(member_id, "H-SIGNED-2"), "branch": "SH02"},
                             integration=his, headers={"Idempotency-Key": "hb-3"})
    assert elsewhere.status_code == 403, elsewhere.text  # the Jing'an HIS does not bill for Pudong
    assert suite.call("POST", "/v1/webhooks/bills", role="integration", branches=SH01,
                      json=his_bill(member_id, "H-SIGNED-3")).status_code == 401  # an API key is not a signature
