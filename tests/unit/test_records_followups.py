"""Follow-up rules: which calls a patient's state calls for, whose queue, when due (SPEC's table)."""

from datetime import date

import pytest

from services.kit.errors import Invalid
from services.records.rules import followups
from services.records.rules.followups import PatientState
from services.records.rules.practice import DEFAULT_PRACTICE, practice_from_config

DAY = date(2026, 11, 23)


def summary(tasks):
    return [(t.state, t.queue, (t.due_on - DAY).days) for t in tasks]


@pytest.mark.parametrize(("kind", "treatment", "surgery", "expected"), [
    ("first", "none", False, [("not_treated", "consultant", 1)]),
    ("return", "ongoing", False, [("in_treatment", "clinician", 2)]),
    ("first", "finished", False, [("treatment_finished", "customer_service", 3)]),
    ("return", "ongoing", True, [("outpatient_surgery", "consultant", 1), ("outpatient_surgery", "consultant", 3),
                                 ("in_treatment", "clinician", 2)]),
    # the day-3 surgery call covers the day-3 "treatment finished" call
    ("return", "finished", True, [("outpatient_surgery", "consultant", 1), ("outpatient_surgery", "consultant", 3)]),
    ("free_clinic", "none", False, [("event_attendee", "customer_service", 1)]),
    ("event", "finished", True, [("event_attendee", "customer_service", 1)]),
    ("emergency", "finished", False, [("treatment_finished", "customer_service", 3)]),
])
def test_after_a_visit(kind, treatment, surgery, expected):
    assert summary(followups.after_visit("v1", kind, treatment, surgery, DAY, DEFAULT_PRACTICE)) == expected


def test_each_fact_has_its_own_dedupe_key():
    tasks = followups.after_visit("v1", "return", "ongoing", True, DAY, DEFAULT_PRACTICE)
    assert [t.dedupe_key for t in tasks] == ["surgery:v1:d1", "surgery:v1:d3", "in_treatment:v1"]
    assert followups.after_no_show("a1", DAY, DEFAULT_PRACTICE)[0].dedupe_key == "no_show:a1"


def test_a_missed_appointment_is_a_customer_service_call_the_next_day():
    assert summary(followups.after_no_show("a1", DAY, DEFAULT_PRACTICE)) == [("never_came", "customer_service", 1)]


def patient(**changes):
    base = {"member_id": "m1", "enrolled_on": None, "has_arrived": True, "treatment": None, "last_visit_id": None,
            "last_visit_on": None, "has_future_appointment": False}
    return PatientState(**{**base, **changes})


@pytest.mark.parametrize(("state", "expected"), [
    (patient(has_arrived=False, enrolled_on=date(2026, 11, 20)), [("never_came", "customer_service", 0)]),
    (patient(has_arrived=False, enrolled_on=date(2026, 11, 21)), []),  # only two days: wait
    (patient(has_arrived=False, enrolled_on=date(2026, 11, 1), has_future_appointment=True), []),
    (patient(has_arrived=True, enrolled_on=date(2026, 11, 1)), []),
    (patient(treatment="ongoing", last_visit_id="v9", last_visit_on=date(2026, 10, 24)),
     [("interrupted", "consultant", 0)]),
    (patient(treatment="ongoing", last_visit_id="v9", last_visit_on=date(2026, 10, 25)), []),
    (patient(treatment="ongoing", last_visit_id="v9", last_visit_on=date(2026, 9, 1), has_future_appointment=True),
     []),
    (patient(treatment="finished", last_visit_id="v9", last_visit_on=date(2026, 9, 1)), []),
])
def test_the_daily_scan(state, expected):
    assert summary(followups.from_state(state, DAY, DEFAULT_PRACTICE)) == expected


def test_settings_change_the_timings():
    practice = practice_from_config({"RECORDS_PRACTICE": {"surgery_call_days": [1, 7], "not_treated_call_after_days": 2}})
    assert summary(followups.after_visit("v", "first", "none", True, DAY, practice)) == [
        ("outpatient_surgery", "consultant", 1), ("outpatient_surgery", "consultant", 7), ("not_treated", "consultant", 2)]
    with pytest.raises(Invalid):
        practice_from_config({"RECORDS_PRACTICE": {"no_such_setting": 1}})


@pytest.mark.parametrize(("role", "queue", "may"), [
    ("customer_service", "customer_service", True), ("customer_service", "consultant", True),
    ("customer_service", "clinician", False), ("clinician", "clinician", True), ("clinician", "consultant", False),
    ("branch_manager", "clinician", True), ("group_admin", "consultant", True), ("front_desk", "customer_service", False),
])
def test_who_works_which_queue(role, queue, may):
    assert followups.may_work(role, queue) is may


@pytest.mark.parametrize(("outcome", "retry_on", "result"), [
    ("reached", None, ("done", None)),
    ("no_answer", None, ("done", None)),
    ("no_answer", date(2026, 11, 24), ("open", date(2026, 11, 24))),
    ("call_back_later", DAY, ("open", DAY)),
    ("reached", date(2026, 11, 24), Invalid),
    ("no_answer", date(2026, 11, 22), Invalid),
])
def test_outcome_effect(outcome, retry_on, result):
    if result is Invalid:
        with pytest.raises(Invalid):
            followups.outcome_effect(outcome, retry_on, DAY)
    else:
        assert followups.outcome_effect(outcome, retry_on, DAY) == result
