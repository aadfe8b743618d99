"""The warehouse's exports of visits, points postings, stored-value postings and coupons over HTTP (issue 19):
the content as CSV, incremental from the cursor, gzip, personal fields masked per role, bad cursors refused."""

from __future__ import annotations

import csv
import gzip
import io
import json

import pytest

from tests.harness import wait_for

NO_LAG = {"EXPORT_SAFETY_LAG_SECONDS": 0}  # the lag's own test is tests/integration/test_exports.py
SH01 = ("SH01",)
EXPORTS = ("visits", "points-postings", "wallet-postings", "coupons")


@pytest.fixture
def suite(start_suite):
    return start_suite(points_config=NO_LAG, records_config=NO_LAG, members_config=NO_LAG)


def cny(amount: int) -> dict:
    return {"amount": amount, "currency": "CNY"}


def rows_of(answer) -> list[dict]:
    assert answer.status_code == 200, answer.text
    body = gzip.decompress(answer.content) if answer.headers["Content-Type"] == "application/gzip" else answer.content
    return list(csv.DictReader(io.StringIO(body.decode("utf-8"))))


def export(suite, kind: str, role: str = "group_admin", **params) -> tuple[list[dict], str]:
    answer = suite.call("GET", f"/v1/exports/{kind}", role=role, params=params)
    return rows_of(answer), answer.headers["X-Export-Cursor"]


def a_member_who_came_topped_up_and_got_a_coupon(suite) -> tuple[str, str]:
    member = suite.call("POST", "/v1/members", json={"full_name": "王芳", "phone": "13900000001",
                                                     "birth_date": "1980-01-02", "home_branch": "SH01"}).json()["id"]
    bill = {"bill_id": "H-1", "member_id": member, "branch": "SH01", "doctor_id": "dr-wang", "currency": "CNY",
            "items": [{"category": "treatment", "code": "RCT1", "amount_minor": 80000}],
            "payments": [{"method": "card", "amount_minor": 80000}], "referral_source": "channel:dianping"}
    assert suite.call("POST", "/v1/his/bills", role="integration", branches=SH01, json=bill).status_code == 200
    topped = suite.call("POST", f"/v1/members/{member}/wallet/top-ups", role="front_desk", branches=SH01,
                        headers={"Idempotency-Key": "till-1"}, json={"amount": cny(500_00), "branch": "SH01"})
    assert topped.status_code == 201, topped.text
    issued = suite.call("POST", f"/v1/members/{member}/coupons", role="customer_service",
                        headers={"Idempotency-Key": "comp-1"},
                        json={"source": "manual", "title": "Sorry for the wait: 30 off", "value": cny(30_00)})
    assert issued.status_code == 201, issued.text
    wait_for(lambda: export(suite, "points-postings")[0], timeout=15, message="the visit's points")
    return member, issued.json()["code"]


def test_each_export_holds_what_happened_in_minor_units_with_the_personal_fields_only_for_the_warehouse_key(suite):
    member, code = a_member_who_came_topped_up_and_got_a_coupon(suite)

    [visit], _ = export(suite, "visits", role="integration")
    assert (visit["member_id"], visit["bill_id"], visit["status"], visit["total_minor"], visit["currency"]) == (
        member, "H-1", "completed", "80000", "CNY")
    assert json.loads(visit["items"]) == [{"category": "treatment", "code": "RCT1", "amount_minor": 80000}]
    assert (visit["doctor_id"], visit["referral_source"], visit["first_visit"]) == ("dr-wang", "channel:dianping", "true")
    postings, _ = export(suite, "points-postings", role="integration")
    assert {posting["member_id"] for posting in postings} == {member}
    balance = 0
    for posting in postings:  # in the order they were written: each balance follows from the one before
        balance += int(posting["points"])
        assert int(posting["balance_after"]) == balance, postings
    earned = [(posting["kind"], posting["source_ref"]) for posting in postings if posting["source"] == "visit"]
    assert earned and set(earned) == {("earn", visit["id"])}
    [top_up], _ = export(suite, "wallet-postings", role="integration")
    assert (top_up["kind"], top_up["amount_minor"], top_up["principal_minor"], top_up["currency"]) == (
        "top_up", "50000", "50000", "CNY")
    assert top_up["operator"].endswith("(front_desk)")
    [coupon], _ = export(suite, "coupons", role="integration")
    assert (coupon["code"], coupon["state"], coupon["value_minor"], coupon["min_spend_minor"]) == (
        code, "issued", "3000", "0")

    # a group admin downloading by hand gets the same rows with the personal fields masked (kit.logs.mask)
    [masked_visit], _ = export(suite, "visits")
    assert (masked_visit["doctor_id"], masked_visit["referral_source"]) == ("***wang", "************ping")
    assert {k: v for k, v in masked_visit.items() if k not in ("doctor_id", "referral_source")} == {
        k: v for k, v in visit.items() if k not in ("doctor_id", "referral_source")}
    [masked_coupon], _ = export(suite, "coupons")
    assert masked_coupon["code"] == "*" * (len(code) - 4) + code[-4:]
    [masked_top_up], _ = export(suite, "wallet-postings")
    assert masked_top_up["operator"] != top_up["operator"] and masked_top_up["operator"].endswith(
        top_up["operator"][-4:]) and set(masked_top_up["operator"][:-4]) == {"*"}

    for kind in EXPORTS:  # the same roles as the members export
        assert suite.call("GET", f"/v1/exports/{kind}", role="front_desk").status_code == 403, kind
    for kind in (*EXPORTS, "members"):  # an export holds every branch: a key of one branch may not take it
        limited = suite.call("GET", f"/v1/exports/{kind}", role="integration", branches=SH01)
        assert limited.status_code == 403 and "all branches" in limited.json()["error"]["message"], kind


def test_the_next_export_holds_only_what_changed_once_and_gzip_holds_the_same_rows(suite):
    member, code = a_member_who_came_topped_up_and_got_a_coupon(suite)
    cursors = {kind: export(suite, kind)[1] for kind in EXPORTS}
    assert all(cursors.values())
    for kind in EXPORTS:
        assert export(suite, kind, since=cursors[kind]) == ([], cursors[kind]), kind

    use = {"member_id": member, "bill_id": "H-2", "bill": cny(200_00), "branch": "SH01"}
    used = suite.call("POST", f"/v1/coupons/{code}/redeem", role="front_desk", branches=SH01,
                      headers={"Idempotency-Key": "H-2"}, json=use)
    assert used.status_code == 200, used.text
    paid = suite.call("POST", f"/v1/members/{member}/wallet/payments", role="front_desk", branches=SH01,
                      headers={"Idempotency-Key": "pay-H-2"}, json={"bill_id": "H-2", "amount": cny(120_00),
                                                                "branch": "SH01"})
    assert paid.status_code == 201, paid.text

    [coupon], coupon_cursor = export(suite, "coupons", since=cursors["coupons"], gzip="true")
    assert (coupon["state"], coupon["redeemed_bill_id"], coupon["discount_minor"]) == ("redeemed", "H-2", "3000")
    [payment], wallet_cursor = export(suite, "wallet-postings", since=cursors["wallet-postings"])
    assert (payment["kind"], payment["amount_minor"], payment["balance_after_minor"]) == ("payment", "-12000", "38000")
    assert export(suite, "coupons", since=coupon_cursor) == ([], coupon_cursor)
    assert export(suite, "wallet-postings", since=wallet_cursor) == ([], wallet_cursor)
    assert export(suite, "visits", since=cursors["visits"]) == ([], cursors["visits"])

    plain = suite.call("GET", "/v1/exports/coupons")
    zipped = suite.call("GET", "/v1/exports/coupons", params={"gzip": "true"})
    assert zipped.headers["Content-Type"] == "application/gzip"
    assert zipped.headers["Content-Disposition"] == 'attachment; filename="coupons.csv.gz"'
    assert gzip.decompress(zipped.content) == plain.content and plain.content.startswith(b"id,code,member_id,")


def test_a_bad_or_foreign_cursor_is_refused_with_422_and_names_since(suite):
    a_member_who_came_topped_up_and_got_a_coupon(suite)
    members_cursor = suite.call("GET", "/v1/exports/members").headers["X-Export-Cursor"]
    postings_cursor = export(suite, "points-postings")[1]
    for kind, since in [("visits", "garbage"), ("coupons", members_cursor[:-3]), ("points-postings", members_cursor),
                        ("coupons", postings_cursor), ("wallet-postings", "eyJ0IjoiMjAyNi0xMi0wNiJ9")]:
        answer = suite.call("GET", f"/v1/exports/{kind}", params={"since": since})
        assert answer.status_code == 422, (kind, since, answer.text)
        assert "since" in answer.json()["error"]["fields"], answer.text
