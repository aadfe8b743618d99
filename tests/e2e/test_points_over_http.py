"""Points, stored value, coupons and rewards through the gateway, as the front desk, managers and the HIS
would use them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import requests
from sqlalchemy import text

from services.records import events as records_events
from services.records.events import VisitCompleted
from tests.harness import store_for, wait_for

DESK = ("front_desk", ("SH01",))
MANAGER = ("branch_manager", ("SH01",))


def cny(amount: int) -> dict:
    return {"amount": amount, "currency": "CNY"}


def enrol(suite, phone: str = "13700137001") -> str:
    created = suite.call("POST", "/v1/members", json={"full_name": "Wang Fang", "phone": phone,
                                                      "birth_date": "1980-04-05", "home_branch": "SH01"})
    assert created.status_code == 201, created.text
    return created.json()["id"]


def as_(suite, who, method, path, key=None, headers=None, **kwargs):
    """A request as ``who`` (role, branches), with an Idempotency-Key when given one."""
    role, branches = who
    headers = {**(headers or {}), **({"Idempotency-Key": key} if key else {})}
    return suite.call(method, path, role=role, branches=branches, headers=headers, **kwargs)


def postings(suite) -> int:
    store = store_for(suite.database_urls["points"])
    try:
        with store.transaction() as session:
            return session.execute(text("SELECT count(*) FROM points_postings")).scalar_one()
    finally:
        store.dispose()


def test_the_desk_gives_activity_points_redeems_a_reward_and_reads_the_history(suite):
    member = enrol(suite)
    base = f"/v1/members/{member}/points"
    award = {"rule": "activity", "source_ref": "talk-2026-11-21", "branch": "SH01"}
    earned = as_(suite, DESK, "POST", f"{base}/earn", key="desk-1-earn-1", json=award)
    assert earned.status_code == 201, earned.text
    again = as_(suite, DESK, "POST", f"{base}/earn", key="desk-1-earn-1", json=award)
    assert again.status_code == 201 and again.json() == earned.json()
    adjusted = as_(suite, MANAGER, "POST", f"{base}/earn", key="mgr-1", json={
        "rule": "adjust", "points": 450, "reason": "goodwill after a complaint", "source_ref": "C-17",
        "branch": "SH01"})
    assert adjusted.status_code == 201
    refused = as_(suite, DESK, "POST", f"{base}/earn", key="desk-adj", json={
        "rule": "adjust", "points": 450, "reason": "x", "source_ref": "x", "branch": "SH01"})
    assert refused.status_code == 403  # only managers adjust by hand

    reward = suite.call("POST", "/v1/rewards", headers={"Idempotency-Key": "cat-1"}, json={
        "code": "BRUSH", "name": "Electric toothbrush", "kind": "product", "points_price": 300, "stock": 2})
    assert reward.status_code == 201, reward.text
    assert as_(suite, DESK, "POST", "/v1/rewards", key="cat-2", json={
        "code": "FLOSS", "name": "Floss", "kind": "product", "points_price": 10, "stock": 2}).status_code == 403
    redeemed = as_(suite, DESK, "POST", f"{base}/redemptions", key="desk-1-red-1",
                   json={"reward_id": reward.json()["id"], "branch": "SH01"})
    assert redeemed.status_code == 201 and redeemed.json()["state"] == "pending"
    short = as_(suite, DESK, "POST", f"{base}/redemptions", key="desk-1-red-2",
                json={"reward_id": reward.json()["id"], "branch": "SH01"})
    assert short.status_code == 409 and short.json()["error"]["code"] == "conflict"

    balance = as_(suite, DESK, "GET", base).json()
    assert (balance["balance"], balance["spendable"]) == (200, 200)
    first = as_(suite, DESK, "GET", f"{base}/history", params={"limit": 2}).json()
    rest = as_(suite, DESK, "GET", f"{base}/history", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [p["kind"] for p in first["items"] + rest["items"]] == ["redeem", "earn", "earn"]
    assert rest["next_cursor"] is None
    handed = as_(suite, DESK, "POST", f"{base}/redemptions/{redeemed.json()['id']}/fulfil", key="hand-1")
    assert handed.status_code == 200 and handed.json()["state"] == "fulfilled"
    assert as_(suite, DESK, "GET", f"/v1/rewards/{reward.json()['id']}").json()["stock"] == 1


def test_points_changes_need_an_idempotency_key_and_the_desk_s_own_branch(suite):
    member = enrol(suite)
    award = {"rule": "activity", "source_ref": "talk", "branch": "SH01"}
    missing = as_(suite, DESK, "POST", f"/v1/members/{member}/points/earn", json=award)
    assert missing.status_code == 422 and "idempotency_key" in missing.json()["error"]["fields"]
    other_branch = as_(suite, ("front_desk", ("SH02",)), "POST", f"/v1/members/{member}/points/earn", key="k1",
                       json=award)
    assert other_branch.status_code == 403
    assert postings(suite) == 0


def test_bad_money_unknown_members_and_unknown_rewards_get_clear_4xx_and_post_nothing(suite):
    member = enrol(suite)
    deduction = {"bill_id": "HIS-1", "bill": {"amount": 100.5, "currency": "CNY"}, "points": 100, "branch": "SH01"}
    floaty = as_(suite, DESK, "POST", f"/v1/members/{member}/points/cash-deductions", key="HIS-1", json=deduction)
    assert floaty.status_code == 422 and "bill" in floaty.json()["error"]["fields"]
    negative = as_(suite, DESK, "POST", f"/v1/members/{member}/wallet/top-ups", key="t-1",
                   json={"amount": cny(-100), "branch": "SH01"})
    assert negative.status_code == 422
    nobody = as_(suite, DESK, "GET", "/v1/members/00000000-0000-0000-0000-000000000000/points")
    assert nobody.status_code == 404 and nobody.json()["error"]["code"] == "not_found"
    no_reward = as_(suite, DESK, "POST", f"/v1/members/{member}/points/redemptions", key="r-x",
                    json={"reward_id": "00000000-0000-0000-0000-000000000000", "branch": "SH01"})
    assert no_reward.status_code == 404
    assert as_(suite, DESK, "POST", f"/v1/members/{member}/points/earn", key="k", data="{oops",
               headers={"Content-Type": "application/json"}).status_code == 400
    assert postings(suite) == 0


def test_cash_deduction_at_the_desk_is_limited_to_half_the_bill(suite):
    member = enrol(suite)
    suite.call("POST", f"/v1/members/{member}/points/earn", headers={"Idempotency-Key": "g1"}, json={
        "rule": "adjust", "points": 50_000, "reason": "opening balance", "source_ref": "import", "branch": "SH01"})
    base = f"/v1/members/{member}/points/cash-deductions"
    limit = as_(suite, DESK, "POST", f"{base}/limit", json={"bill": cny(200_00)})
    assert limit.json()["max_points"] == 10_000 and limit.json()["max_amount"] == cny(100_00)
    too_much = as_(suite, DESK, "POST", base, key="HIS-9", json={"bill_id": "HIS-9", "bill": cny(200_00),
                                                                 "points": 10_001, "branch": "SH01"})
    assert too_much.status_code == 409
    taken = as_(suite, DESK, "POST", base, key="HIS-9", json={"bill_id": "HIS-9", "bill": cny(200_00),
                                                              "points": 10_000, "branch": "SH01"})
    assert taken.status_code == 201 and taken.json()["amount"] == cny(100_00)
    cancelled = as_(suite, DESK, "POST", f"/v1/members/{member}/points/redemptions/{taken.json()['id']}/cancel",
                    key="undo-9", json={"reason": "bill voided"})
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert as_(suite, DESK, "GET", f"/v1/members/{member}/points").json()["balance"] == 50_000


def test_stored_value_top_up_pay_and_a_manager_s_refund(suite):
    member = enrol(suite)
    base = f"/v1/members/{member}/wallet"
    topped = as_(suite, DESK, "POST", f"{base}/top-ups", key="till-7", json={"amount": cny(500_00), "branch": "SH01"})
    assert topped.status_code == 201 and topped.json()["amount"] == cny(500_00)
    paid = as_(suite, DESK, "POST", f"{base}/payments", key="HIS-20", json={"bill_id": "HIS-20",
                                                                            "amount": cny(120_00), "branch": "SH01"})
    assert paid.status_code == 201 and paid.json()["amount"] == cny(-120_00)
    refund_path = f"{base}/payments/{paid.json()['id']}/refunds"
    assert as_(suite, DESK, "POST", refund_path, key="rf-1", json={"amount": cny(20_00), "reason": "x"}).status_code \
        == 403
    refunded = as_(suite, MANAGER, "POST", refund_path, key="rf-1", json={"amount": cny(20_00), "reason": "overcharged"})
    assert refunded.status_code == 201
    held = as_(suite, DESK, "GET", base).json()
    assert held["balance"] == cny(400_00) and held["largest_top_up"] == cny(500_00)
    assert [p["kind"] for p in as_(suite, DESK, "GET", f"{base}/history").json()["items"]] == [
        "refund", "payment", "top_up"]
    over = as_(suite, DESK, "POST", f"{base}/payments", key="HIS-21", json={"bill_id": "HIS-21",
                                                                           "amount": cny(400_01), "branch": "SH01"})
    assert over.status_code == 409


def test_a_coupon_issued_by_customer_service_is_used_once_at_the_desk(suite):
    member = enrol(suite)
    issued = as_(suite, ("customer_service", ("*",)), "POST", f"/v1/members/{member}/coupons", key="comp-3",
                 json={"source": "manual", "title": "Sorry for the wait: 30 off", "value": cny(30_00)})
    assert issued.status_code == 201, issued.text
    code = issued.json()["code"]
    use = {"member_id": member, "bill_id": "HIS-30", "bill": cny(200_00), "branch": "SH01"}
    checked = as_(suite, DESK, "POST", f"/v1/coupons/{code}/check", json=use)
    assert checked.status_code == 200 and checked.json()["discount"] == cny(30_00)
    used = as_(suite, DESK, "POST", f"/v1/coupons/{code}/redeem", key="HIS-30", json=use)
    assert used.status_code == 200 and used.json()["state"] == "redeemed"
    again = as_(suite, DESK, "POST", f"/v1/coupons/{code}/redeem", key="HIS-31", json={**use, "bill_id": "HIS-31"})
    assert again.status_code == 409
    assert as_(suite, DESK, "POST", f"/v1/coupons/{code}/void", key="v", json={"reason": "x"}).status_code == 403
    listed = as_(suite, DESK, "GET", f"/v1/members/{member}/coupons").json()["items"]
    assert [c["code"] for c in listed] == [code]


def test_a_completed_visit_earns_and_the_points_service_is_ready_measured_and_documented(suite, amqp_uri):
    from nameko.standalone.events import event_dispatcher

    from tests.harness import service_config

    member = enrol(suite)
    completed = records_events.EVENTS.wire("visit_completed", {
        **VisitCompleted.sample, "visit_id": uuid.uuid4(), "member_id": uuid.UUID(member), "doctor_id": "d1",
        "kind": "first", "bill_id": "HIS-e2e-1", "completed_at": datetime(2026, 11, 23, 1, tzinfo=UTC),
        "items": [{"category": "cleaning", "code": "C1", "amount_minor": 300_00}],
        "payments": [{"method": "mobile", "amount_minor": 300_00}], "qualifying_minor": 300_00,
        "first_visit": True, "first_paid_visit": True})
    event_dispatcher(service_config(amqp_uri))("records", "visit_completed", {
        "event_id": "e2e-visit-1", "occurred_at": "2026-11-23T01:00:00Z", **completed})
    wait_for(lambda: as_(suite, DESK, "GET", f"/v1/members/{member}/points").json()["balance"] == 310,
             message="points for the visit")
    assert suite.call("GET", "/ready", role=None).json()["services"]["points"] == "ok"
    audit = suite.call("GET", "/v1/points/reconciliation", role="auditor")
    assert audit.status_code == 200 and audit.json()["ok"] is True
    assert suite.call("GET", "/v1/points/reconciliation", role="front_desk").status_code == 403
    jobs = suite.call("POST", "/v1/points/daily-jobs", json={})
    assert jobs.status_code == 200 and jobs.json()["reconcile"]["finished"], jobs.text
    metrics = requests.get(f"http://127.0.0.1:{suite.metrics_ports['points']}/metrics", timeout=10).text
    assert 'careloop_points_earned_total{branch="SH01",rule="spend"}' in metrics
    assert "careloop_points_outstanding 310.0" in metrics and "careloop_points_liability_minor 310.0" in metrics
    assert "careloop_points_reconciliation_mismatches 0.0" in metrics
    spec = suite.call("GET", "/openapi.json", role=None).json()
    assert {"/v1/members/{member_id}/points", "/v1/members/{member_id}/wallet/top-ups", "/v1/rewards",
            "/v1/coupons/{code}/redeem"} <= set(spec["paths"])
    top_up = spec["paths"]["/v1/members/{member_id}/wallet/top-ups"]["post"]
    assert top_up["x-permission"] == "wallet:topup" and "409" in top_up["responses"]
