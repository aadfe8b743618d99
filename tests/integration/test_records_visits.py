"""Visits through the records RPC: completing HIS bills once, the event contract, refunds, the lifecycle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.kit.errors import Conflict, Forbidden, Invalid, NotFound
from tests.integration.records_support import (
    CLINICIAN,
    FRONT_DESK,
    HIS,
    bill,
    enrol,
    events,
    rows,
    start_records,
)

COMPLETED_FIELDS = {"event_id", "occurred_at", "visit_id", "member_id", "branch", "doctor_id", "kind", "bill_id",
                    "completed_at", "currency", "items", "payments", "qualifying_minor", "first_visit",
                    "first_paid_visit", "referral_source"}


@pytest.fixture
def suite(start_service, rpc, backend):
    records, _members = start_records(start_service, backend)
    return records, rpc()


def test_completing_the_same_bill_twice_makes_one_visit_and_one_event(suite, rpc):
    records, proxy = suite
    member_id = enrol(proxy, 10)
    his = rpc(caller=HIS).records
    first = his.complete_visit(bill(member_id, "SH01-B-1001"))
    again = his.complete_visit(bill(member_id, "SH01-B-1001"))
    assert again == first and first["status"] == "completed"
    # and when the HIS retries while the first call is still being handled
    racing = [his.complete_visit.call_async(bill(member_id, "SH01-B-1002")) for _ in range(4)]
    assert len({reply.result()["id"] for reply in racing}) == 1
    assert rows(records.database_url, "SELECT count(*) FROM visits")[0][0] == 2
    completed = events(records.database_url, "visit_completed")
    assert sorted(e["bill_id"] for e in completed) == ["SH01-B-1001", "SH01-B-1002"]


def test_visit_completed_carries_exactly_what_points_and_members_need(suite, rpc):
    records, proxy = suite
    referrer = proxy.members.enrol({"full_name": "Referrer One", "phone": "13800139999", "birth_date": "1970-01-01",
                                    "home_branch": "SH01"})
    member_id = enrol(proxy, 11, referral_code=referrer["referral_code"])
    his = rpc(caller=HIS).records
    free = his.complete_visit({"bill_id": "FC-1", "member_id": member_id, "branch": "SH01", "kind": "free_clinic",
                               "currency": "CNY", "items": [{"category": "exam", "code": "SCREEN",
                                                             "amount_minor": 0}]})
    paid = his.complete_visit(bill(member_id, "SH01-B-2001", kind="return",
                                   completed_at="2026-01-05T02:30:00Z"))
    later = his.complete_visit(bill(member_id, "SH01-B-2002"))
    assert (free["first_visit"], free["first_paid_visit"]) == (True, False)
    assert (paid["first_visit"], paid["first_paid_visit"]) == (False, True)
    assert (later["first_visit"], later["first_paid_visit"]) == (False, False)

    event = next(e for e in events(records.database_url, "visit_completed") if e["bill_id"] == "SH01-B-2001")
    assert set(event) == COMPLETED_FIELDS
    assert event == {**event, "visit_id": paid["id"], "member_id": member_id, "branch": "SH01", "doctor_id": "dr-wang",
                     "kind": "return", "completed_at": "2026-01-05T02:30:00Z", "currency": "CNY",
                     "qualifying_minor": 20000, "first_visit": False, "first_paid_visit": True,
                     "referral_source": f"member:{referrer['id']}"}
    assert event["items"] == [{"category": "exam", "code": "EX01", "amount_minor": 10000},
                              {"category": "treatment", "code": "FIL2", "amount_minor": 20000}]
    assert event["payments"] == [{"method": "card", "amount_minor": 20000}, {"method": "points", "amount_minor": 5000},
                                 {"method": "coupon", "amount_minor": 5000}]
    assert all(isinstance(e["qualifying_minor"], int) for e in events(records.database_url, "visit_completed"))
    assert "Patient" not in str(events(records.database_url, "visit_completed"))  # ids, never personal data


def test_a_bill_sent_again_with_other_details_is_a_conflict(suite, rpc):
    _records, proxy = suite
    member_id = enrol(proxy, 12)
    his = rpc(caller=HIS).records
    first = his.complete_visit(bill(member_id, "B-3001"))
    changed = bill(member_id, "B-3001")
    changed["payments"] = [{"method": "cash", "amount_minor": 30000}]
    with pytest.raises(Conflict) as conflict:
        his.complete_visit(changed)
    assert conflict.value.details["visit_id"] == first["id"]


@pytest.mark.parametrize(("change", "error", "field"), [
    ({"payments": [{"method": "card", "amount_minor": 100}]}, Invalid, "payments"),
    ({"payments": [{"method": "card", "amount_minor": 300.0}]}, Invalid, "payments"),
    ({"payments": [{"method": "cheque", "amount_minor": 30000}]}, Invalid, "payments"),
    ({"items": [{"category": "massage", "code": "X", "amount_minor": 30000}]}, Invalid, "items"),
    ({"items": [{"category": "exam", "code": "X", "amount_minor": -1}]}, Invalid, "items"),
    ({"currency": "USD"}, Invalid, "currency"),
    ({"branch": "XX99"}, Forbidden, None),
    ({"completed_at": (datetime.now(UTC) + timedelta(hours=2)).isoformat()}, Invalid, "completed_at"),
    ({"kind": "house_call"}, Invalid, "kind"),
    ({"referral_source": "my friend"}, Invalid, "referral_source"),
    ({"member_id": "00000000-0000-0000-0000-000000000001"}, NotFound, None),
])
def test_a_bad_bill_is_refused_clearly_and_writes_nothing(suite, rpc, change, error, field):
    records, proxy = suite
    member_id = enrol(proxy, 13)
    with pytest.raises(error) as refused:
        rpc(caller=HIS).records.complete_visit({**bill(member_id, "B-4001"), **change})
    if field:
        assert field in refused.value.fields
    for table in ("visits", "visit_items", "kit_outbox", "follow_ups"):
        assert rows(records.database_url, f"SELECT count(*) FROM {table}")[0][0] == 0, table


def test_refunds_emit_visit_refunded_once_per_his_refund(suite, rpc):
    records, proxy = suite
    member_id = enrol(proxy, 14)
    his = rpc(caller=HIS).records
    visit = his.complete_visit(bill(member_id, "B-5001"))
    partial = {"refund_id": "R-1", "bill_id": "B-5001", "payments": [{"method": "card", "amount_minor": 5000},
                                                                     {"method": "points", "amount_minor": 5000}]}
    after = his.refund_visit(partial)
    assert his.refund_visit(partial) == after
    assert after["refunded_minor"] == 10000 and after["refunds"][0]["qualifying_minor"] == 5000
    with pytest.raises(Invalid) as too_much:
        his.refund_visit({"refund_id": "R-2", "visit_id": visit["id"],
                          "payments": [{"method": "card", "amount_minor": 15001}]})
    assert "card" in too_much.value.fields["payments"]
    with pytest.raises(Conflict):
        his.refund_visit({**partial, "payments": [{"method": "card", "amount_minor": 1}]})
    rest = his.refund_visit({"refund_id": "R-3", "visit_id": visit["id"],
                             "payments": [{"method": "card", "amount_minor": 15000},
                                          {"method": "coupon", "amount_minor": 5000}]})
    assert rest["refunded_minor"] == 30000
    refunded = events(records.database_url, "visit_refunded")
    assert [(e["refunded_minor"], e["full"]) for e in refunded] == [(5000, False), (15000, True)]
    assert set(refunded[0]) == {"event_id", "occurred_at", "visit_id", "member_id", "branch", "refund_id",
                                "refunded_minor", "currency", "full"}
    with pytest.raises(NotFound):
        his.refund_visit({"refund_id": "R-4", "bill_id": "NO-SUCH", "payments": [{"method": "card",
                                                                                  "amount_minor": 1}]})


def test_a_walk_in_arrives_is_treated_and_the_bill_completes_that_visit(suite, rpc):
    records, proxy = suite
    member_id = enrol(proxy, 15)
    desk = rpc(caller=FRONT_DESK).records
    visit = desk.open_visit({"member_id": member_id, "branch": "SH01", "doctor_id": "dr-li"}, idempotency_key="w-1")
    assert (visit["status"], visit["kind"]) == ("arrived", "first")
    assert rpc(caller=CLINICIAN).records.advance_visit(visit["id"], "in_treatment")["status"] == "in_treatment"
    assert desk.advance_visit(visit["id"], "in_treatment")["status"] == "in_treatment"  # a retry: no change
    with pytest.raises(Conflict):
        desk.advance_visit(visit["id"], "cancelled")
    done = rpc(caller=HIS).records.complete_visit(bill(member_id, "B-6001"))  # no visit id: today's open visit
    assert done["id"] == visit["id"] and done["status"] == "completed" and done["doctor_id"] == "dr-wang"
    with pytest.raises(Conflict):
        desk.advance_visit(visit["id"], "arrived")
    listed = desk.list_visits(member_id)["items"]
    assert [v["id"] for v in listed] == [visit["id"]] and listed[0]["items"][1]["code"] == "FIL2"


def test_cancelling_a_booked_visit_emits_visit_cancelled(suite, rpc):
    records, proxy = suite
    member_id = enrol(proxy, 16)
    desk = rpc(caller=FRONT_DESK).records
    visit = desk.open_visit({"member_id": member_id, "branch": "SH01", "status": "booked",
                             "scheduled_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()})
    assert visit["status"] == "booked"
    assert desk.advance_visit(visit["id"], "cancelled")["status"] == "cancelled"
    desk.advance_visit(visit["id"], "cancelled")
    assert [e["visit_id"] for e in events(records.database_url, "visit_cancelled")] == [visit["id"]]
    with pytest.raises(Forbidden):
        rpc(caller=FRONT_DESK.__class__(kind="staff", subject="d2", role="front_desk", branches=("HZ01",))
            ).records.advance_visit(visit["id"], "arrived")
