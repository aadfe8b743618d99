"""Feedback through the records RPC: one survey per visit, complaints with deadlines, answers, resolution."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from services.kit.caller import Identity
from services.kit.errors import Conflict, Forbidden, Invalid
from tests.integration.records_support import (
    CUSTOMER_SERVICE,
    FRONT_DESK,
    HIS,
    MANAGER,
    bill,
    enrol,
    events,
    rows,
    start_records,
)

APP = Identity(kind="system", subject="key:member-app", role="integration", branches=("*",))


@pytest.fixture
def suite(start_service, rpc, backend):
    records, _members = start_records(start_service, backend)
    return records, rpc()


def test_a_survey_per_completed_visit_and_its_event(suite, rpc):
    records, proxy = suite
    member_id = enrol(proxy, 90)
    visit = rpc(caller=HIS).records.complete_visit(bill(member_id, "FB-1"))
    app = rpc(caller=APP).records
    answer = app.submit_feedback({"member_id": member_id, "kind": "survey", "visit_id": visit["id"],
                                  "satisfaction": "very_satisfied", "nps": 9, "comment": "Gentle and quick"},
                                 idempotency_key="survey-1")
    assert answer == app.submit_feedback({"member_id": member_id, "kind": "survey", "visit_id": visit["id"],
                                          "satisfaction": "very_satisfied", "nps": 9, "comment": "Gentle and quick"},
                                         idempotency_key="survey-1")
    assert (answer["branch"], answer["status"], answer["response_due_at"]) == ("SH01", "closed", None)
    with pytest.raises(Conflict):
        app.submit_feedback({"member_id": member_id, "kind": "survey", "visit_id": visit["id"], "nps": 3})
    (event,) = events(records.database_url, "feedback_submitted")
    assert event == {"event_id": event["event_id"], "occurred_at": event["occurred_at"], "feedback_id": answer["id"],
                     "member_id": member_id, "visit_id": visit["id"], "branch": "SH01", "kind": "survey",
                     "satisfaction": "very_satisfied", "nps": 9, "urgent": False}
    assert "Gentle" not in str(rows(records.database_url, "SELECT comment FROM feedback"))


@pytest.mark.parametrize(("change", "field"), [
    ({"visit_id": None}, "visit_id"),
    ({"satisfaction": None, "nps": None}, "satisfaction"),
    ({"nps": 11}, "nps"),
    ({"nps": 7.5}, "nps"),
    ({"satisfaction": "ecstatic"}, "satisfaction"),
    ({"urgent": True}, "urgent"),
    ({"channel": "pigeon"}, "channel"),
])
def test_bad_surveys_are_refused_and_write_nothing(suite, rpc, change, field):
    records, proxy = suite
    member_id = enrol(proxy, 91)
    visit = rpc(caller=HIS).records.complete_visit(bill(member_id, "FB-2"))
    survey = {"member_id": member_id, "kind": "survey", "visit_id": visit["id"], "satisfaction": "neutral",
              "nps": 7, **change}
    with pytest.raises(Invalid) as refused:
        rpc(caller=APP).records.submit_feedback(survey)
    assert field in refused.value.fields
    assert rows(records.database_url, "SELECT count(*) FROM feedback")[0][0] == 0


def test_a_survey_needs_a_completed_visit_of_the_member(suite, rpc):
    _records, proxy = suite
    member_id, other = enrol(proxy, 92), enrol(proxy, 93)
    walk_in = rpc(caller=FRONT_DESK).records.open_visit({"member_id": member_id, "branch": "SH01"})
    with pytest.raises(Invalid):
        rpc(caller=APP).records.submit_feedback({"member_id": member_id, "kind": "survey", "visit_id": walk_in["id"],
                                                 "nps": 8})
    with pytest.raises(Invalid):
        rpc(caller=APP).records.submit_feedback({"member_id": other, "kind": "complaint", "visit_id": walk_in["id"],
                                                 "comment": "Not my visit"})


def test_an_urgent_complaint_is_due_in_30_minutes_answered_and_resolved(suite, rpc):
    records, proxy = suite
    member_id = enrol(proxy, 94)
    desk = rpc(caller=FRONT_DESK).records
    normal = desk.submit_feedback({"member_id": member_id, "kind": "complaint", "branch": "SH01", "channel": "desk",
                                   "comment": "Waited an hour"})
    urgent = desk.submit_feedback({"member_id": member_id, "kind": "complaint", "branch": "SH01", "urgent": True,
                                   "channel": "phone", "comment": "Severe pain after extraction"})
    submitted = datetime.fromisoformat(urgent["submitted_at"])
    assert datetime.fromisoformat(urgent["response_due_at"]) - submitted == timedelta(minutes=30)
    assert datetime.fromisoformat(normal["response_due_at"]) - datetime.fromisoformat(normal["submitted_at"]) == \
        timedelta(hours=24)
    cs = rpc(caller=CUSTOMER_SERVICE).records
    queue = cs.complaints({"branch": "SH01"})["items"]
    assert [c["id"] for c in queue] == [urgent["id"], normal["id"]]  # the nearest deadline first
    with pytest.raises(Forbidden):
        desk.complaints({"branch": "SH01"})
    with pytest.raises(Forbidden):
        rpc(caller=Identity(kind="staff", subject="cs-hz", role="customer_service", branches=("HZ01",))
            ).records.respond_to_complaint(urgent["id"], {"response": "Calling you now"})

    answered = cs.respond_to_complaint(urgent["id"], {"response": "Calling you now"})
    assert answered["status"] == "responded" and answered["first_response_at"] and not answered["overdue"]
    again = cs.respond_to_complaint(urgent["id"], {"response": "Booked you in at 3 pm"})
    assert again["first_response_at"] == answered["first_response_at"] and again["response"].startswith("Booked")
    resolved = rpc(caller=MANAGER).records.resolve_complaint(urgent["id"], {"resolution": "Seen same day; dry socket"},
                                                             idempotency_key="res-1")
    assert resolved["status"] == "resolved" and resolved["resolution"] == "Seen same day; dry socket"
    with pytest.raises(Conflict):
        cs.resolve_complaint(urgent["id"], {"resolution": "Again"})
    assert [c["id"] for c in cs.complaints({"branch": "SH01"})["items"]] == [normal["id"]]
    assert [c["id"] for c in cs.complaints({"branch": "SH01", "status": "resolved"})["items"]] == [urgent["id"]]
    assert [e["urgent"] for e in events(records.database_url, "feedback_submitted")] == [False, True]
    raw = str(rows(records.database_url, "SELECT comment, response, resolution FROM feedback"))
    assert "extraction" not in raw and "dry socket" not in raw and "3 pm" not in raw
    with pytest.raises(Invalid):
        desk.submit_feedback({"member_id": member_id, "kind": "complaint", "branch": "SH01", "comment": "  "})
