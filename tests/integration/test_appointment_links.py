"""A patient's confirm and cancel links (records, members and the run's broker, PostgreSQL): a link acts
once, a cancellation is the desk's (the slot goes to the waitlist), every way a slot frees offers it through
one rule, never beyond the branch's horizon, and two uses of one link at the same moment act once."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from services.kit import links
from services.kit.clock import utcnow
from services.kit.errors import Conflict, Gone, NotFound
from tests.integration.overlap import LockWaits
from tests.integration.records_support import FRONT_DESK, enrol, events, local_today, rows, start_records

SECRET = "integration-link-secret-0123456789abcdef"


def token(appointment: dict, action: str, nonce: str | None = None, expires=None) -> str:
    from datetime import datetime

    expires = expires or datetime.fromisoformat(appointment["starts_at"])
    return links.sign(SECRET, links.Claims(subject=appointment["id"], action=action, expires_at=expires,
                                           nonce=nonce or f"{uuid.uuid4().hex}{action[0]}"))


def setting_up(start_service, rpc, days_ahead: int = 1, **practice):
    records, _members = start_records(start_service, "postgresql", APPOINTMENT_LINK_SECRET=SECRET,
                                      RECORDS_PRACTICE={"audit_settle_minutes": 10, **practice})
    proxy, desk = rpc(), rpc(caller=FRONT_DESK).records
    on = local_today() + timedelta(days=days_ahead)
    slots = desk.publish_slots({"branch": "SH01", "doctor_id": "dr-wang", "on": on.isoformat(), "start": "09:00",
                                "end": "11:00", "slot_minutes": 30})["items"]
    return records, proxy, desk, on, slots


def wait_list(proxy, desk, on, number: int) -> str:
    member_id = enrol(proxy, number)
    desk.join_waitlist({"member_id": member_id, "branch": "SH01", "service_category": "cleaning",
                        "earliest_on": local_today().isoformat(), "latest_on": (on + timedelta(days=5)).isoformat()})
    return member_id


def test_a_cancel_link_cancels_once_like_the_desk_and_offers_the_slot(start_service, rpc):
    records, proxy, desk, on, slots = setting_up(start_service, rpc)
    patient, waiting = enrol(proxy, 1), wait_list(proxy, desk, on, 2)
    appointment = desk.book({"member_id": patient, "slot_id": slots[0]["id"], "service_category": "cleaning"})
    cancel = token(appointment, "cancel")

    shown = proxy.records.appointment_link(cancel)  # looking changes nothing
    assert (shown["action"], shown["used"], shown["status"], shown["branch"]) == ("cancel", False, "booked", "SH01")
    assert events(records.database_url, "appointment_cancelled") == []

    used = proxy.records.use_appointment_link(cancel)
    assert (used["outcome"], used["status"], used["used"]) == ("cancelled", "cancelled", True)
    (cancelled,) = events(records.database_url, "appointment_cancelled")
    assert cancelled["appointment_id"] == appointment["id"] and cancelled["reason"] == "cancelled by the patient (link)"
    (offer,) = events(records.database_url, "waitlist_slot_offered")
    assert offer["member_id"] == waiting and offer["starts_at"] == appointment["starts_at"]
    assert offer["expires_at"] <= appointment["starts_at"]
    (visit,) = rows(records.database_url, "SELECT status FROM visits WHERE appointment_id = :a", a=appointment["id"])
    assert visit[0] == "cancelled"

    again = proxy.records.use_appointment_link(cancel)
    assert again["outcome"] == "already_done" and len(events(records.database_url, "appointment_cancelled")) == 1
    trail = rows(records.database_url, "SELECT actor_kind, actor, resource, resource_id, detail FROM audit_trail "
                 "WHERE resource = 'appointment'")
    assert trail == [("patient", "appointment-link", "appointment", appointment["id"], "cancelled")]
    with pytest.raises(Conflict, match="cancelled, so it cannot be confirmed"):
        proxy.records.use_appointment_link(token(appointment, "confirm"))


def test_a_confirm_link_confirms_once_and_bad_links_change_nothing(start_service, rpc):
    records, proxy, desk, _on, slots = setting_up(start_service, rpc)
    appointment = desk.book({"member_id": enrol(proxy, 3), "slot_id": slots[1]["id"], "service_category": "exam"})
    confirm = token(appointment, "confirm")
    used = proxy.records.use_appointment_link(confirm)
    assert used["outcome"] == "confirmed" and used["confirmed_at"] is not None and used["status"] == "booked"
    assert desk.get_appointment(appointment["id"])["confirmed_at"] == used["confirmed_at"]
    assert proxy.records.use_appointment_link(confirm)["outcome"] == "already_done"
    assert proxy.records.use_appointment_link(token(appointment, "confirm"))["outcome"] == "already_done"
    (confirmed,) = events(records.database_url, "appointment_confirmed")  # once, not for the two "already done"
    assert confirmed["appointment_id"] == appointment["id"] and confirmed["starts_at"] == appointment["starts_at"]

    with pytest.raises(NotFound, match="not valid"):
        proxy.records.use_appointment_link(confirm[:-2] + ("AA" if not confirm.endswith("AA") else "BB"))
    with pytest.raises(Gone, match="expired"):
        proxy.records.use_appointment_link(token(appointment, "cancel", expires=utcnow() - timedelta(seconds=1)))
    with pytest.raises(NotFound, match="not valid"):
        proxy.records.use_appointment_link(links.sign("another-secret-of-32-characters-xx", links.Claims(
            subject=appointment["id"], action="cancel", expires_at=utcnow() + timedelta(days=1), nonce="x")))
    assert desk.get_appointment(appointment["id"])["status"] == "booked"
    # two links used (the second found the appointment confirmed already); the refused ones left no trace
    assert rows(records.database_url, "SELECT outcome FROM appointment_link_uses ORDER BY used_at") == [
        ("confirmed",), ("already_done",)]


def test_a_slot_freed_any_way_is_offered_and_never_beyond_the_branch_horizon(start_service, rpc):
    records, proxy, desk, on, slots = setting_up(start_service, rpc, days_ahead=2,
                                                 waitlist_horizon_days_by_branch={"SH01": 1})
    wait_list(proxy, desk, on, 4)
    far = desk.book({"member_id": enrol(proxy, 5), "slot_id": slots[0]["id"], "service_category": "cleaning"})
    desk.cancel_appointment(far["id"], "patient called")
    assert events(records.database_url, "waitlist_slot_offered") == []  # two days ahead, the horizon is one

    near_day = local_today() + timedelta(days=1)
    near = desk.publish_slots({"branch": "SH01", "doctor_id": "dr-li", "on": near_day.isoformat(), "start": "09:00",
                               "end": "10:00", "slot_minutes": 30})["items"]
    # a visit cancelled at the desk frees its appointment's slot
    first = desk.book({"member_id": enrol(proxy, 6), "slot_id": near[0]["id"], "service_category": "cleaning"})
    rpc(caller=FRONT_DESK).records.advance_visit(first["visit_id"], "cancelled")
    # an appointment moved to another slot frees the one it left
    second = desk.book({"member_id": enrol(proxy, 7), "slot_id": near[1]["id"], "service_category": "cleaning"})
    desk.reschedule(second["id"], near[0]["id"])
    offered = sorted(o["starts_at"] for o in events(records.database_url, "waitlist_slot_offered"))
    assert offered == sorted([near[0]["starts_at"], near[1]["starts_at"]])


@pytest.mark.timeout(240)
def test_two_uses_of_one_link_at_the_same_moment_act_once(start_service, rpc):
    records, proxy, desk, _on, slots = setting_up(start_service, rpc)
    overlapped = 0
    for attempt in range(4):  # until the two uses were seen waiting for each other (at most 4 appointments)
        appointment = desk.book({"member_id": enrol(proxy, 20 + attempt), "slot_id": slots[attempt]["id"],
                                 "service_category": "cleaning"})
        cancel = token(appointment, "cancel")
        with LockWaits(records.database_url) as waits:
            replies = [proxy.records.use_appointment_link.call_async(cancel) for _ in range(2)]
            outcomes = sorted(reply.result()["outcome"] for reply in replies)
        assert outcomes == ["already_done", "cancelled"], outcomes
        cancelled = [e for e in events(records.database_url, "appointment_cancelled")
                     if e["appointment_id"] == appointment["id"]]
        assert len(cancelled) == 1
        if waits.count("transactionid", "tuple") > 0:
            overlapped += 1
            break
    assert overlapped, "the two uses never waited for each other: they did not overlap"
