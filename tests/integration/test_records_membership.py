"""Members' lifecycle in the records: a merge moves the duplicate's record to the survivor (audited,
once however often the event comes), the merged id then names the survivor, a reversal moves back
exactly what was moved; a closed membership stops what was to come but keeps the record; a frozen one
takes no new booking until it is active again."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from nameko.standalone.events import event_dispatcher

from services.kit.clock import isoformat, local_date, utcnow
from services.kit.errors import Conflict
from services.members.events import EVENTS as MEMBERS_EVENTS
from services.members.events import MemberEnrolled
from tests.harness import query, scalar, service_config, wait_for
from tests.integration.records_support import (
    ADMIN,
    AUDITOR,
    CLINICIAN,
    FRONT_DESK,
    HIS,
    ZONE,
    bill,
    enrol,
    events,
    local_today,
    start_records,
)

PENICILLIN = {"substance": "Penicillin", "reaction": "Hives", "severity": "severe", "noted_on": None}
LATEX = {"substance": "Latex", "reaction": "Rash", "severity": "mild", "noted_on": None}
METFORMIN = {"name": "Metformin", "dose": "500 mg", "frequency": "twice daily", "since": None}


@pytest.fixture
def suite(start_service, rpc, backend, amqp_uri):
    records, members = start_records(start_service, backend)
    return records, members, rpc(), amqp_uri


def slot(desk, days_ahead: int = 1, start: str = "09:00") -> str:
    on = (local_today() + timedelta(days=days_ahead)).isoformat()
    hour, minute = start.split(":")
    end = f"{hour}:{int(minute) + 30:02d}"
    return desk.publish_slots({"branch": "SH01", "doctor_id": "dr-wang", "on": on, "start": start, "end": end,
                               "slot_minutes": 30})["items"][0]["id"]


def merge(rpc, records, survivor: str, duplicate: str) -> str:
    merge_id = rpc(caller=ADMIN).members.merge_members(
        survivor, {"merged_id": duplicate, "reason": "same person, two cards"})["merge_id"]
    wait_for(lambda: query(records.database_url, "SELECT 1 FROM record_merges WHERE merge_id = :m", m=merge_id),
             timeout=15, message="records to apply the merge")
    return merge_id


def moves(records, merge_id: str) -> dict[str, int]:
    return dict(query(records.database_url, "SELECT table_name, count(*) FROM merge_moves WHERE merge_id = :m "
                                            "GROUP BY table_name", m=merge_id))


def status_of(records, member_id: str) -> str:
    """The membership status records keeps (a uuid column: native on PostgreSQL, 32 hex digits on SQLite)."""
    key = member_id if records.database_url.startswith("postgresql") else uuid.UUID(member_id).hex
    return scalar(records.database_url, "SELECT membership_status FROM patients WHERE member_id = :m", m=key)


def a_patient_with_history(rpc, proxy, number: int, allergies: list, notes: str, tooth: int, **profile) -> str:
    member_id = enrol(proxy, number)
    doctor = rpc(caller=CLINICIAN).records
    visit = rpc(caller=HIS).records.complete_visit(bill(member_id, f"B-{number}"))  # and a day-3 follow-up call
    rpc(caller=FRONT_DESK).records.submit_feedback({"member_id": member_id, "kind": "survey", "visit_id": visit["id"],
                                                    "satisfaction": "satisfied"})
    doctor.update_health_profile(member_id, {"allergies": allergies, "notes": notes, **profile}, "examination")
    doctor.update_chart(member_id, {"marks": [{"tooth": tooth, "finding": "crown"}]}, "examination")
    return member_id


def test_a_merge_moves_the_duplicates_record_to_the_survivor_once_and_audits_it(suite, rpc):
    records, _members, proxy, amqp_uri = suite
    doctor, desk = rpc(caller=CLINICIAN).records, rpc(caller=FRONT_DESK).records
    survivor = a_patient_with_history(rpc, proxy, 201, [PENICILLIN], "Prefers mornings", 36)
    duplicate = a_patient_with_history(rpc, proxy, 202, [PENICILLIN, LATEX], "Anxious about needles", 11,
                                       medication=[METFORMIN])
    booked = desk.book({"member_id": duplicate, "slot_id": slot(desk), "service_category": "cleaning"})
    doctor.save_care_plan(duplicate, {"recall_type": "cleaning", "branch": "SH01", "guidance": "Floss"}, "plan")

    merge_id = merge(rpc, records, survivor, duplicate)

    record = doctor.get_record(survivor, "review after merge")
    profile = record["profile"]
    assert profile["allergies"] == [PENICILLIN, LATEX]  # the union, none twice
    assert profile["medication"] == [METFORMIN]
    assert profile["notes"].startswith("Prefers mornings\n\n--- From the record of merged member " + duplicate)
    assert profile["notes"].endswith("---\nAnxious about needles") and profile["version"] == 3
    assert [t["tooth"] for t in record["chart"]["teeth"]] == [11, 36]
    assert len(record["visits"]["items"]) == 3  # two completed, and the duplicate's booked one
    assert [a["id"] for a in record["upcoming_appointments"]] == [booked["id"]]
    assert [p["recall_type"] for p in record["care_plans"]] == ["cleaning"]
    assert len(record["open_follow_ups"]) == 2
    assert [r["version"] for r in doctor.health_profile_history(survivor, "review")["items"]] == [3, 2, 1]
    assert [c["version"] for c in doctor.chart_history(survivor, "review")["items"]] == [3, 2, 1]
    assert moves(records, merge_id) == {"visits": 2, "appointments": 1, "follow_ups": 1, "care_plans": 1,
                                        "chart_changes": 1, "health_profile_revisions": 1, "feedback": 1}
    kept = query(records.database_url, "SELECT merged_before FROM record_merges WHERE merge_id = :m", m=merge_id)
    assert "Anxious" not in kept[0][0] and "Latex" not in kept[0][0]  # encrypted at rest
    trail = rpc(caller=AUDITOR).records.audit_trail({"member_id": duplicate})["items"]
    assert [(e["actor"], e["actor_kind"], e["reason"]) for e in trail if e["actor"] == "records"] == [
        ("records", "service", f"member_merged {merge_id}")]
    assert "visits 2" in trail[0]["detail"]

    (sent,) = events(_members.database_url, "member_merged")
    dispatch = event_dispatcher(service_config(amqp_uri))
    dispatch("members", "member_merged", sent)  # redelivered: the inbox knows it
    again = {**sent, "event_id": str(uuid.uuid4()), "occurred_at": isoformat(utcnow())}
    dispatch("members", "member_merged", again)  # the same merge announced twice: applied once
    wait_for(lambda: query(records.database_url, "SELECT 1 FROM kit_inbox WHERE event_id = :e",
                           e=again["event_id"]), timeout=15, message="records to take the second announcement")
    assert moves(records, merge_id)["visits"] == 2
    assert doctor.get_health_profile(survivor, "review")["version"] == 3

    late = rpc(caller=HIS).records.complete_visit(bill(duplicate, "B-late"))  # the HIS still knows the old id
    assert late["member_id"] == survivor
    assert events(records.database_url, "visit_completed")[-1]["member_id"] == survivor
    assert doctor.get_record(duplicate, "old card scanned")["member_id"] == survivor
    assert [a["id"] for a in desk.list_appointments({"member_id": duplicate})["items"]] == [booked["id"]]


def test_reversing_a_merge_moves_back_exactly_what_it_moved(suite, rpc):
    records, _members, proxy, _amqp = suite
    doctor, his = rpc(caller=CLINICIAN).records, rpc(caller=HIS).records
    survivor = a_patient_with_history(rpc, proxy, 211, [PENICILLIN], "Prefers mornings", 36)
    duplicate = a_patient_with_history(rpc, proxy, 212, [LATEX], "Anxious about needles", 11)
    merge_id = merge(rpc, records, survivor, duplicate)
    after_merge = his.complete_visit(bill(duplicate, "B-after"))  # for the survivor, through the alias
    doctor.update_health_profile(survivor, {"medication": [METFORMIN]}, "new prescription")

    rpc(caller=ADMIN).members.reverse_merge(merge_id, {"reason": "two people after all"})
    wait_for(lambda: scalar(records.database_url, "SELECT status FROM record_merges WHERE merge_id = :m",
                            m=merge_id) == "unmerged", timeout=15, message="records to reverse the merge")

    theirs = doctor.get_record(duplicate, "review")
    assert theirs["member_id"] == duplicate  # no longer an alias
    assert theirs["profile"]["allergies"] == [LATEX] and theirs["profile"]["notes"] == "Anxious about needles"
    assert [t["tooth"] for t in theirs["chart"]["teeth"]] == [11]
    assert [v["bill_id"] for v in theirs["visits"]["items"]] == ["B-212"]
    assert [r["version"] for r in doctor.health_profile_history(duplicate, "review")["items"]] == [1]
    assert len(theirs["open_follow_ups"]) == 1

    ours = doctor.get_record(survivor, "review")
    assert ours["profile"]["allergies"] == [PENICILLIN]  # what the merge brought went with it
    assert ours["profile"]["notes"] == "Prefers mornings"
    assert ours["profile"]["medication"] == [METFORMIN]  # written since the merge: stays
    assert [t["tooth"] for t in ours["chart"]["teeth"]] == [36]
    assert sorted(v["bill_id"] for v in ours["visits"]["items"]) == ["B-211", after_merge["bill_id"]]
    trail = rpc(caller=AUDITOR).records.audit_trail({"member_id": survivor})["items"]
    assert [e["reason"] for e in trail if e["actor"] == "records"] == [f"member_unmerged {merge_id}",
                                                                       f"member_merged {merge_id}"]


def test_a_closed_membership_stops_what_was_to_come_and_keeps_the_record(suite, rpc):
    records, _members, proxy, _amqp = suite
    doctor, desk = rpc(caller=CLINICIAN).records, rpc(caller=FRONT_DESK).records
    member_id = a_patient_with_history(rpc, proxy, 221, [PENICILLIN], "Prefers mornings", 36)
    booked = desk.book({"member_id": member_id, "slot_id": slot(desk), "service_category": "cleaning"})
    plan = doctor.save_care_plan(member_id, {"recall_type": "cleaning", "branch": "SH01"}, "plan")

    rpc(caller=ADMIN).members.close_member(member_id, {"reason": "erasure_request"})
    wait_for(lambda: events(records.database_url, "appointment_cancelled"), timeout=15,
             message="records to cancel the appointment")

    (cancelled,) = events(records.database_url, "appointment_cancelled")
    assert (cancelled["appointment_id"], cancelled["reason"]) == (booked["id"], "member_closed: erasure_request")
    assert desk.list_appointments({"member_id": member_id})["items"][0]["status"] == "cancelled"
    tasks = rpc(caller=ADMIN).records.member_follow_ups(member_id, False)["items"]
    assert [(t["status"], t["outcome"]) for t in tasks] == [("cancelled", "member_closed")]
    updated = events(records.database_url, "care_plan_updated")[-1]
    assert (updated["care_plan_id"], updated["status"]) == (plan["id"], "closed")
    record = doctor.get_record(member_id, "records retention check")  # the clinical record is kept
    assert record["profile"]["allergies"] == [PENICILLIN] and len(record["visits"]["items"]) == 2
    with pytest.raises(Conflict):
        desk.book({"member_id": member_id, "slot_id": slot(desk, start="10:00")})


def test_a_frozen_member_cannot_book_until_active_again_and_keeps_their_appointments(suite, rpc):
    records, _members, proxy, _amqp = suite
    desk, admin = rpc(caller=FRONT_DESK).records, rpc(caller=ADMIN).members
    member_id = enrol(proxy, 231)
    booked = desk.book({"member_id": member_id, "slot_id": slot(desk), "service_category": "cleaning"})

    admin.freeze_member(member_id, {"reason": "dispute"})
    wait_for(lambda: status_of(records, member_id) == "frozen", timeout=15, message="records to see the freeze")
    with pytest.raises(Conflict) as refused:
        desk.book({"member_id": member_id, "slot_id": slot(desk, 2)})
    assert "frozen" in refused.value.message
    assert desk.list_appointments({"member_id": member_id})["items"][0]["status"] == "booked"
    assert desk.list_appointments({"member_id": member_id})["items"][0]["id"] == booked["id"]

    admin.unfreeze_member(member_id, {"reason": "resolved"})
    wait_for(lambda: status_of(records, member_id) == "active", timeout=15, message="records to see the reactivation")
    assert desk.book({"member_id": member_id, "slot_id": slot(desk, 3)})["status"] == "booked"


def test_members_events_are_read_by_their_contract_and_a_broken_one_is_parked_at_once(suite, rpc):
    """Records reads what members' contract declares: an enrolment built from the contract's sample starts the
    "never came" clock on its ``enrolled_at``; one that breaks the contract is parked, never half applied."""
    records, _members, _proxy, amqp_uri = suite
    dispatch = event_dispatcher(service_config(amqp_uri))
    member_id, enrolled_at = uuid.uuid4(), utcnow() - timedelta(days=3)
    body = MEMBERS_EVENTS.wire("member_enrolled", {**MemberEnrolled.sample, "member_id": member_id,
                                                   "referrer_id": None, "enrolled_at": enrolled_at})
    dispatch("members", "member_enrolled", {**body, "event_id": str(uuid.uuid4()), "occurred_at": isoformat(utcnow())})
    on = wait_for(lambda: query(records.database_url, "SELECT enrolled_on, home_branch FROM patients "
                                                      "WHERE enrolled_on IS NOT NULL"),
                  timeout=15, message="records to take the enrolment")
    assert [(str(day), branch) for day, branch in on] == [(local_date(enrolled_at, ZONE).isoformat(), "SH01")]

    broken_id = str(uuid.uuid4())
    dispatch("members", "member_enrolled", {**body, "member_id": str(uuid.uuid4()), "enrolled_at": None,
                                            "event_id": broken_id, "occurred_at": isoformat(utcnow())})
    parked = wait_for(lambda: [d for d in rpc(caller=ADMIN).records.dead_letters() if d["event_id"] == broken_id],
                      timeout=15, message="the broken enrolment parked")
    assert parked[0]["attempts"] == 1 and "enrolled_at" in parked[0]["error"]  # parked at once: no retry fixes it
    assert scalar(records.database_url, "SELECT count(*) FROM patients") == 1
