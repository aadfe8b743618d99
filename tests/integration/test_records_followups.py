"""Follow-up (callback) queues through the records RPC: tasks from patient state, queues per role and
branch with the overdue first, outcomes, and the daily scan (never came, treatment interrupted)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.kit.caller import Identity
from services.kit.errors import Forbidden, Invalid
from tests.harness import wait_for
from tests.integration.records_support import (
    CLINICIAN,
    CUSTOMER_SERVICE,
    FRONT_DESK,
    HIS,
    MANAGER,
    bill,
    enrol,
    local_today,
    rows,
    start_records,
)


@pytest.fixture
def suite(start_service, rpc, backend):
    records, _members = start_records(start_service, backend)
    return records, rpc()


def days_ago(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


def complete(his, member_id: str, bill_id: str, categories: list[str], **extra) -> dict:
    items = [{"category": c, "code": c.upper()[:4], "amount_minor": 10000} for c in categories]
    return his.complete_visit({**bill(member_id, bill_id, **extra), "items": items,
                               "payments": [{"method": "card", "amount_minor": 10000 * len(items)}]})


def summary(queue: dict) -> list[tuple[str, str, int, bool]]:
    today = local_today()
    return [(t["state"], t["queue"], (datetime.fromisoformat(t["due_on"]).date() - today).days, t["overdue"])
            for t in queue["items"]]


def test_visits_make_calls_for_the_right_queue_and_the_overdue_come_first(suite, rpc):
    _records, proxy = suite
    his = rpc(caller=HIS).records
    m = [enrol(proxy, 50 + n) for n in range(5)]
    complete(his, m[0], "F-1", ["exam"])  # came, not treated
    complete(his, m[1], "F-2", ["treatment"], treatment="ongoing")  # in treatment
    complete(his, m[2], "F-3", ["surgery"])  # outpatient surgery, finished
    complete(his, m[3], "F-4", ["cleaning"])  # treatment finished
    complete(his, m[4], "F-5", ["exam"], kind="free_clinic", completed_at=days_ago(10))  # event, overdue

    cs = rpc(caller=CUSTOMER_SERVICE).records.follow_up_queue({"branch": "SH01"})
    assert summary(cs)[0] == ("event_attendee", "customer_service", -9, True)  # overdue first
    assert sorted(summary(cs)) == [("event_attendee", "customer_service", -9, True),
                                   ("not_treated", "consultant", 1, False),
                                   ("outpatient_surgery", "consultant", 1, False),
                                   ("outpatient_surgery", "consultant", 3, False),
                                   ("treatment_finished", "customer_service", 3, False)]
    assert [t["due_on"] for t in cs["items"]] == sorted(t["due_on"] for t in cs["items"])
    consultant = rpc(caller=CUSTOMER_SERVICE).records.follow_up_queue({"branch": "SH01", "queue": "consultant"})
    assert {t["state"] for t in consultant["items"]} == {"not_treated", "outpatient_surgery"}
    doctor = rpc(caller=CLINICIAN).records.follow_up_queue({"branch": "SH01"})
    assert summary(doctor) == [("in_treatment", "clinician", 2, False)]
    assert len(rpc(caller=MANAGER).records.follow_up_queue({"branch": "SH01"})["items"]) == 6

    paged, cursor = [], None
    while True:
        page = rpc(caller=CUSTOMER_SERVICE).records.follow_up_queue({"branch": "SH01", "limit": 2, "cursor": cursor})
        paged += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert paged == [t["id"] for t in cs["items"]]
    due_now = rpc(caller=CUSTOMER_SERVICE).records.follow_up_queue(
        {"branch": "SH01", "due_by": local_today().isoformat()})
    assert [t["state"] for t in due_now["items"]] == ["event_attendee"]


def test_queues_are_for_their_roles_and_their_branches(suite, rpc):
    with pytest.raises(Forbidden):
        rpc(caller=FRONT_DESK).records.follow_up_queue({"branch": "SH01"})
    with pytest.raises(Forbidden):
        rpc(caller=CLINICIAN).records.follow_up_queue({"branch": "SH01", "queue": "consultant"})
    hangzhou = Identity(kind="staff", subject="cs-hz", role="customer_service", branches=("HZ01",))
    with pytest.raises(Forbidden):
        rpc(caller=hangzhou).records.follow_up_queue({"branch": "SH01"})
    with pytest.raises(Invalid):
        rpc(caller=hangzhou).records.follow_up_queue({"branch": "HZ01", "queue": "dentist"})


def test_outcomes_close_a_task_or_keep_it_for_another_try(suite, rpc):
    records, proxy = suite
    his, cs = rpc(caller=HIS).records, rpc(caller=CUSTOMER_SERVICE).records
    member_id, other = enrol(proxy, 60), enrol(proxy, 61)
    complete(his, member_id, "O-1", ["cleaning"])
    (task,) = cs.follow_up_queue({"branch": "SH01"})["items"]
    retry_on = (local_today() + timedelta(days=1)).isoformat()
    kept = cs.record_follow_up(task["id"], {"outcome": "no_answer", "retry_on": retry_on}, idempotency_key="o-1")
    assert (kept["status"], kept["due_on"], kept["attempts"]) == ("open", retry_on, 1)
    assert cs.record_follow_up(task["id"], {"outcome": "no_answer", "retry_on": retry_on},
                               idempotency_key="o-1") == kept  # a retried request: once
    slots = rpc(caller=FRONT_DESK).records.publish_slots({
        "branch": "SH01", "doctor_id": "dr-wang", "on": (local_today() + timedelta(days=2)).isoformat(),
        "start": "14:00", "end": "15:00", "slot_minutes": 30})["items"]
    appointment = cs.book({"member_id": member_id, "slot_id": slots[0]["id"]})
    not_theirs = cs.book({"member_id": other, "slot_id": slots[1]["id"]})
    with pytest.raises(Invalid) as wrong:
        cs.record_follow_up(task["id"], {"outcome": "appointment_booked", "next_appointment_id": not_theirs["id"]})
    assert "next_appointment_id" in wrong.value.fields
    done = cs.record_follow_up(task["id"], {"outcome": "appointment_booked", "notes": "Happy with the cleaning",
                                            "next_appointment_id": appointment["id"]})
    assert (done["status"], done["next_appointment_id"], done["attempts"]) == ("done", appointment["id"], 2)
    with pytest.raises(Invalid):
        cs.record_follow_up(task["id"], {"outcome": "reached"})
    assert "Happy" not in str(rows(records.database_url, "SELECT notes FROM follow_ups"))
    assert rpc(caller=CLINICIAN).records.member_follow_ups(member_id, False)["items"][0]["notes"] == \
        "Happy with the cleaning"


def test_the_daily_scan_finds_who_never_came_and_whose_treatment_stopped(suite, rpc):
    records, proxy = suite
    his = rpc(caller=HIS).records
    newcomer = enrol(proxy, 70)
    stopped, waiting = enrol(proxy, 71), enrol(proxy, 72)
    wait_for(lambda: rows(records.database_url, "SELECT count(*) FROM patients WHERE enrolled_on IS NOT NULL")[0][0]
             == 3, message="enrolments seen by records")
    complete(his, stopped, "S-1", ["treatment"], treatment="ongoing", completed_at=days_ago(40))
    complete(his, waiting, "S-2", ["treatment"], treatment="ongoing", completed_at=days_ago(40))
    desk = rpc(caller=FRONT_DESK).records
    slot = desk.publish_slots({"branch": "SH01", "doctor_id": "dr-wang",
                               "on": (local_today() + timedelta(days=1)).isoformat(), "start": "10:00",
                               "end": "10:30", "slot_minutes": 30})["items"][0]
    desk.book({"member_id": waiting, "slot_id": slot["id"]})

    today = local_today()
    assert proxy.records.scan_follow_ups(today.isoformat())["finished"] is True
    assert proxy.records.scan_follow_ups(today.isoformat())["skipped"] == "done"
    later = (today + timedelta(days=3)).isoformat()
    proxy.records.scan_follow_ups(later)
    proxy.records.scan_follow_ups((today + timedelta(days=4)).isoformat())  # the same facts: no second task
    tasks = rows(records.database_url, "SELECT state, queue FROM follow_ups WHERE state IN "
                                       "('never_came', 'interrupted') ORDER BY state")
    assert [tuple(t) for t in tasks] == [("interrupted", "consultant"), ("never_came", "customer_service")]
    states = {t["member_id"]: t["state"] for t in rpc(caller=MANAGER).records.follow_up_queue(
        {"branch": "SH01"})["items"] if t["state"] in ("never_came", "interrupted")}
    assert states == {newcomer: "never_came", stopped: "interrupted"}
    with pytest.raises(Forbidden):
        rpc(caller=MANAGER).records.scan_follow_ups(later)

    # the newcomer comes after all: the call is no longer needed
    rpc(caller=FRONT_DESK).records.open_visit({"member_id": newcomer, "branch": "SH01"})
    assert rpc(caller=CUSTOMER_SERVICE).records.member_follow_ups(newcomer)["items"] == []


def test_a_no_show_is_a_call_for_customer_service(suite, rpc):
    _records, proxy = suite
    member_id = enrol(proxy, 80)
    desk = rpc(caller=FRONT_DESK).records
    visit = desk.open_visit({"member_id": member_id, "branch": "SH01", "status": "booked",
                             "scheduled_at": days_ago(1)})
    desk.advance_visit(visit["id"], "no_show")
    (task,) = rpc(caller=CUSTOMER_SERVICE).records.member_follow_ups(member_id)["items"]
    assert (task["state"], task["queue"]) == ("never_came", "customer_service")
