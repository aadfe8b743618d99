"""Appointments through the records RPC: slots, the booking horizon, one booking per slot (also when two
desks book at the same moment), reschedule, cancel, check in."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.kit.caller import Identity
from services.kit.errors import Conflict, Forbidden, Invalid
from tests.integration.records_support import (
    CLINICIAN,
    FRONT_DESK,
    enrol,
    events,
    local_today,
    rows,
    start_records,
)


@pytest.fixture
def suite(start_service, rpc, backend):
    records, _members = start_records(start_service, backend)
    return records, rpc()


def publish(desk, days_ahead: int, doctor: str = "dr-wang", start: str = "09:00", end: str = "10:00",
            branch: str = "SH01") -> list[dict]:
    on = (local_today() + timedelta(days=days_ahead)).isoformat()
    return desk.publish_slots({"branch": branch, "doctor_id": doctor, "on": on, "start": start, "end": end,
                               "slot_minutes": 30})["items"]


def test_publishing_slots_twice_is_harmless_and_overlaps_are_refused(suite, rpc):
    _records, _proxy = suite
    desk = rpc(caller=FRONT_DESK).records
    slots = publish(desk, 1)
    assert [s["starts_at"][11:16] for s in slots] == ["01:00", "01:30"]  # 09:00 and 09:30 in Shanghai
    assert publish(desk, 1) == slots
    with pytest.raises(Conflict):
        publish(desk, 1, start="09:15", end="09:45")
    with pytest.raises(Forbidden):
        publish(desk, 1, branch="HZ01")  # not the desk's branch
    with pytest.raises(Invalid):
        publish(desk, -1)
    listed = desk.list_slots({"branch": "SH01", "on": (local_today() + timedelta(days=1)).isoformat()})["items"]
    assert [s["id"] for s in listed] == [s["id"] for s in slots] and all(s["free"] for s in listed)


def test_booking_within_the_horizon_and_not_beyond(suite, rpc):
    records, proxy = suite
    member_id = enrol(proxy, 30)
    desk = rpc(caller=FRONT_DESK).records
    slot = publish(desk, 3)[0]
    far = publish(desk, 4)[0]  # a standard member books up to 3 days ahead
    booked = desk.book({"member_id": member_id, "slot_id": slot["id"], "service_category": "cleaning"},
                       idempotency_key="bk-1")
    assert booked["status"] == "booked" and booked["starts_at"] == slot["starts_at"]
    assert desk.book({"member_id": member_id, "slot_id": slot["id"], "service_category": "cleaning"},
                     idempotency_key="bk-1") == booked
    with pytest.raises(Invalid) as beyond:
        desk.book({"member_id": member_id, "slot_id": far["id"]})
    assert "standard tier may book up to 3 days ahead" in beyond.value.message
    booked_events = events(records.database_url, "appointment_booked")
    assert booked_events == [{**booked_events[0], "appointment_id": booked["id"], "member_id": member_id,
                              "branch": "SH01", "doctor_id": "dr-wang", "starts_at": slot["starts_at"],
                              "ends_at": slot["ends_at"], "service_category": "cleaning"}]
    visit = desk.get_visit(booked["visit_id"])
    assert (visit["status"], visit["visit_at"]) == ("booked", slot["starts_at"])
    elsewhere = Identity(kind="staff", subject="desk-hz", role="front_desk", branches=("HZ01",))
    with pytest.raises(Forbidden):
        rpc(caller=elsewhere).records.book({"member_id": member_id, "slot_id": publish(desk, 1)[1]["id"]})


def test_two_bookings_of_one_slot_at_the_same_moment_one_succeeds(suite, rpc):
    records, proxy = suite
    members = [enrol(proxy, 31 + n) for n in range(6)]
    desk = rpc(caller=FRONT_DESK)
    slot = publish(desk.records, 1)[0]
    # all six requests wait in the records queue together; its workers run them concurrently
    replies = [desk.records.book.call_async({"member_id": m, "slot_id": slot["id"]}) for m in members]
    outcomes = []
    for reply in replies:
        try:
            outcomes.append(reply.result()["member_id"])
        except Conflict as conflict:
            outcomes.append("taken" if "just been taken" in conflict.message else conflict.message)
    assert outcomes.count("taken") == 5 and len(set(outcomes) - {"taken"}) == 1
    assert rows(records.database_url, "SELECT count(*) FROM appointments")[0][0] == 1
    assert len(events(records.database_url, "appointment_booked")) == 1
    free = desk.records.list_slots({"branch": "SH01", "on": (local_today() + timedelta(days=1)).isoformat()})
    assert slot["id"] not in [s["id"] for s in free["items"]]


def test_reschedule_cancel_and_check_in(suite, rpc):
    records, proxy = suite
    anna, bo = enrol(proxy, 40), enrol(proxy, 41)
    desk = rpc(caller=FRONT_DESK).records
    first, second = publish(desk, 1)
    other_doctor = publish(desk, 1, doctor="dr-li")[0]
    mine = desk.book({"member_id": anna, "slot_id": first["id"]})
    theirs = desk.book({"member_id": bo, "slot_id": second["id"]})
    with pytest.raises(Conflict):
        desk.reschedule(mine["id"], second["id"])  # taken
    with pytest.raises(Conflict) as double:
        desk.book({"member_id": anna, "slot_id": other_doctor["id"]})  # Anna is with dr-wang then
    assert "already has an appointment" in double.value.message

    moved = desk.reschedule(mine["id"], other_doctor["id"], idempotency_key="mv-1")
    assert (moved["slot_id"], moved["doctor_id"]) == (other_doctor["id"], "dr-li")
    assert desk.get_visit(mine["visit_id"])["doctor_id"] == "dr-li"
    (rescheduled,) = events(records.database_url, "appointment_rescheduled")
    assert (rescheduled["previous_starts_at"], rescheduled["starts_at"]) == (first["starts_at"],
                                                                            other_doctor["starts_at"])
    again = desk.book({"member_id": bo, "slot_id": first["id"]})  # the slot Anna left is free again
    desk.cancel_appointment(again["id"], "double booked by mistake")

    cancelled = desk.cancel_appointment(theirs["id"], "feeling unwell")
    assert desk.cancel_appointment(theirs["id"], "feeling unwell") == cancelled
    assert desk.get_visit(theirs["visit_id"])["status"] == "cancelled"
    reasons = [e["reason"] for e in events(records.database_url, "appointment_cancelled")]
    assert reasons == ["double booked by mistake", "feeling unwell"]
    assert len(events(records.database_url, "visit_cancelled")) == 2

    arrived = rpc(caller=CLINICIAN).records.check_in(mine["id"])
    assert arrived["status"] == "checked_in" and desk.get_visit(mine["visit_id"])["status"] == "arrived"
    with pytest.raises(Conflict):
        desk.cancel_appointment(mine["id"])
    with pytest.raises(Conflict) as early:
        desk.mark_no_show(desk.book({"member_id": bo, "slot_id": second["id"]})["id"])
    assert "not started yet" in early.value.message
    day = desk.list_appointments({"branch": "SH01", "on": (local_today() + timedelta(days=1)).isoformat()})
    assert sorted(a["status"] for a in day["items"]) == ["booked", "cancelled", "cancelled", "checked_in"]
    assert {a["id"] for a in desk.list_appointments({"member_id": anna})["items"]} == {mine["id"]}
