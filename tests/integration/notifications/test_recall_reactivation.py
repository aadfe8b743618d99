"""Recalls stop while the patient has a visit booked (checked when the message is due to go), go on after a
cancellation, stop after 4 unanswered messages and put the patient on the branch's reactivation list, with
a contact cap; "do not contact" stops every marketing journey and every recall."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest

from services.kit.errors import Conflict
from services.records.events import AppointmentBooked, AppointmentCancelled, CarePlanUpdated
from tests.harness import wait_for
from tests.integration.notifications.conftest import announce
from tests.integration.notifications.test_journeys import NO_PUSH, Y, at, member_id


def care_plan(s, member, due_on: date) -> None:
    s.publish(CarePlanUpdated, announce(CarePlanUpdated, member_id=member_id(member), care_plan_id=uuid.uuid4(),
                                        recall_type="cleaning", recall_interval_months=6, next_recall_on=due_on,
                                        status="active"))


def scan(s, local_day: date) -> dict:
    """The daily recall scan at 00:30 of ``local_day`` in Shanghai."""
    return s.rpc.notifications.run_daily(now=f"{local_day - timedelta(days=1)}T16:30:00Z", jobs=["recalls"])


def recalls(s, member) -> list[tuple[str, str | None]]:
    return [(d["state"], (d["reason"] or "").split(":")[0] or None)
            for d in reversed(s.deliveries(member["id"], "recall"))]


def inbox(s, member) -> list[str]:
    return [m["body"] for m in s.rpc.notifications.inbox(member["id"], limit=100)["items"]]


def test_a_recall_waits_for_a_visit_booked_after_it_was_queued_then_goes_on_and_ends_on_the_reactivation_list(
        suite):
    s = suite(channels=())  # the inbox only: these patients gave no other address
    member = s.enrol(**{**NO_PUSH, "consents": {"marketing": True}})
    care_plan(s, member, date(Y, 6, 30))
    wait_for(lambda: s.handled("on_care_plan_updated") == 1, message="the care plan is known")
    assert scan(s, date(Y, 6, 2))["recalls"]["processed"] == 1  # 28 days before the due date
    assert recalls(s, member) == [("queued", None)]

    appointment = uuid.uuid4()  # booked after the scan queued the recall, before it was due to go
    s.publish(AppointmentBooked, announce(AppointmentBooked, appointment_id=appointment, member_id=member_id(member),
                                          branch="SH01", doctor_id="d-1", starts_at=at(f"{Y}-06-20T02:00:00+00:00"),
                                          ends_at=at(f"{Y}-06-20T02:30:00+00:00"), service_category="cleaning"))
    wait_for(lambda: s.deliveries(member["id"], "appointment_confirmation"), message="the booking is known")
    assert recalls(s, member) == [("cancelled", "an appointment is booked")]  # taken back, not an attempt
    s.dispatch(f"{Y}-06-02T02:00:00Z")
    assert not any("Time to book" in body for body in inbox(s, member))
    assert scan(s, date(Y, 6, 3))["recalls"]["processed"] == 0  # and it waits until the day after that visit

    s.publish(AppointmentCancelled, announce(AppointmentCancelled, appointment_id=appointment,
                                             member_id=member_id(member), branch="SH01",
                                             starts_at=at(f"{Y}-06-20T02:00:00+00:00"), reason="patient called"))
    wait_for(lambda: s.handled("on_appointment_cancelled") == 1, message="the cancellation is known")
    days = [date(Y, 6, 21) + timedelta(weeks=6 * n) for n in range(4)]  # then every six weeks
    for day in days:
        assert scan(s, day)["recalls"]["processed"] == 1, day
        s.dispatch(f"{day}T02:00:00Z")
    assert recalls(s, member) == [("cancelled", "an appointment is booked")] + [("delivered", None)] * 4
    attempts = [s.rpc.notifications.get_delivery(d["id"])["context"]["attempt"]
                for d in reversed(s.deliveries(member["id"], "recall"))]
    assert attempts == [1, 1, 2, 3, 4]  # the message taken back was not an attempt

    assert scan(s, days[-1] + timedelta(weeks=6))["recalls"]["processed"] == 0  # no fifth message
    (listed,) = s.rpc.notifications.reactivation_list({"branch": "SH01"})["items"]
    assert (listed["member_id"], listed["recall_type"], listed["attempts"], listed["reactivation_contacts"]) == (
        member["id"], "cleaning", 4, 0)
    assert s.rpc.notifications.reactivation_list({"branch": "SH02"})["items"] == []
    once = s.rpc.notifications.record_reactivation(listed["id"], idempotency_key="call-1")
    assert once["reactivation_contacts"] == 1
    assert s.rpc.notifications.record_reactivation(listed["id"], idempotency_key="call-1") == once  # a retry
    assert s.rpc.notifications.record_reactivation(listed["id"], idempotency_key="call-2")["reactivation_contacts"] == 2
    with pytest.raises(Conflict):  # the contact cap (2)
        s.rpc.notifications.record_reactivation(listed["id"], idempotency_key="call-3")
    assert s.rpc.notifications.reactivation_list({"branch": "SH01"})["items"] == []


def test_do_not_contact_stops_marketing_and_recalls_and_keeps_the_member_off_the_reactivation_list(suite):
    s = suite(channels=(), recall_max_attempts=1)
    member = s.enrol(**{**NO_PUSH, "consents": {"marketing": True}})
    care_plan(s, member, date(Y, 6, 30))
    wait_for(lambda: s.handled("on_care_plan_updated") == 1, message="the care plan is known")
    scan(s, date(Y, 6, 2))
    (listed,) = s.rpc.notifications.reactivation_list({"branch": "SH01"})["items"]  # one unanswered message
    for journey in ("member_day", "results_ready"):
        s.rpc.notifications.schedule({"member_id": member["id"], "journey": journey, "cause": journey,
                                      "due_at": f"{Y}-06-02T02:00:00Z", "context": {"branch": "SH01"}})
    changed = s.rpc.notifications.set_preferences(member["id"], {"do_not_contact": True}, idempotency_key="dnc")
    assert changed["do_not_contact"] is True
    assert s.rpc.notifications.get_preferences(member["id"])["do_not_contact"] is True

    s.dispatch(f"{Y}-06-02T02:00:00Z")
    states = {d["journey"]: (d["state"], (d["reason"] or "").split(":")[0] or None)
              for d in s.deliveries(member["id"]) if d["journey"] != "welcome"}
    assert states == {"member_day": ("suppressed", "do_not_contact"), "recall": ("suppressed", "do_not_contact"),
                      "results_ready": ("delivered", None)}  # what the member asked for still comes
    assert s.rpc.notifications.reactivation_list({"branch": "SH01"})["items"] == []
    with pytest.raises(Conflict):
        s.rpc.notifications.record_reactivation(listed["id"], idempotency_key="call-1")
