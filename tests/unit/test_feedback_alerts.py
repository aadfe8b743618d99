"""Which feedback alerts the branch's staff, on which channel and when: the rule alone, at its boundaries."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from services.kit.config import BranchAlerts, group_from_config
from services.kit.contracts import load_event
from services.notifications.rules.alerts import SAMPLE, Feedback, alerts_for, context_of, is_negative, needs_recipient
from services.notifications.rules.sending import QuietHours
from services.notifications.templates import Renderer
from services.records.events import EVENTS, FeedbackSubmitted

ZONE = ZoneInfo("Asia/Shanghai")
QUIET = QuietHours.parse("21:00-08:00")
STAFF = BranchAlerts(email=("manager@example.com", "lead@example.com"), sms=("+8613800000101",))
DAY = datetime(2027, 3, 10, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
NIGHT = datetime(2027, 3, 10, 15, 30, tzinfo=UTC)  # 23:30 in Shanghai
MORNING = datetime(2027, 3, 11, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai, the end of those quiet hours


def feedback(kind: str = "survey", satisfaction: str | None = None, nps: int | None = None,
             urgent: bool = False) -> Feedback:
    return Feedback(feedback_id="f-1", branch="SH01", kind=kind, satisfaction=satisfaction, nps=nps, urgent=urgent)


@pytest.mark.parametrize(("nps", "negative"), [(0, True), (5, True), (6, True), (7, False), (8, False), (10, False)])
def test_nps_six_and_below_is_negative_seven_and_above_is_not(nps, negative):
    assert is_negative(feedback(nps=nps)) is negative


@pytest.mark.parametrize(("level", "negative"), [
    ("very_satisfied", False), ("satisfied", False), ("neutral", False), ("dissatisfied", True),
    ("very_dissatisfied", True),
])
def test_only_the_two_dissatisfied_levels_are_negative(level, negative):
    assert is_negative(feedback(satisfaction=level)) is negative


def test_a_survey_with_no_scores_is_not_negative_but_any_complaint_is():
    assert not is_negative(feedback())
    assert is_negative(feedback(kind="complaint"))
    assert is_negative(feedback(kind="complaint", satisfaction="very_satisfied", nps=10))


def test_a_good_satisfaction_does_not_hide_a_detractor_score():
    assert is_negative(feedback(satisfaction="satisfied", nps=3))


def test_positive_feedback_alerts_nobody():
    assert alerts_for(feedback(satisfaction="very_satisfied", nps=10), STAFF, DAY, QUIET, ZONE) == []
    assert not needs_recipient(feedback(nps=9), BranchAlerts())


def test_a_non_urgent_complaint_by_day_alerts_by_email_only_at_once():
    alerts = alerts_for(feedback(kind="complaint"), STAFF, DAY, QUIET, ZONE)
    assert [(a.channel, a.address, a.due_at) for a in alerts] == [
        ("email", "manager@example.com", DAY), ("email", "lead@example.com", DAY)]


def test_negative_feedback_at_night_waits_for_the_morning():
    alerts = alerts_for(feedback(nps=2), STAFF, NIGHT, QUIET, ZONE)
    assert {a.channel for a in alerts} == {"email"} and {a.due_at for a in alerts} == {MORNING}


def test_an_urgent_complaint_in_quiet_hours_alerts_every_channel_at_once():
    alerts = alerts_for(feedback(kind="complaint", urgent=True), STAFF, NIGHT, QUIET, ZONE)
    assert sorted((a.channel, a.address) for a in alerts) == [
        ("email", "lead@example.com"), ("email", "manager@example.com"), ("sms", "+8613800000101")]
    assert {a.due_at for a in alerts} == {NIGHT}


def test_urgent_applies_to_complaints_only():
    alerts = alerts_for(feedback(nps=1, urgent=True), STAFF, NIGHT, QUIET, ZONE)
    assert {a.channel for a in alerts} == {"email"} and {a.due_at for a in alerts} == {MORNING}


def test_a_branch_with_nobody_to_alert_must_be_recorded():
    assert alerts_for(feedback(kind="complaint", urgent=True), BranchAlerts(), DAY, QUIET, ZONE) == []
    assert needs_recipient(feedback(kind="complaint", urgent=True), BranchAlerts())


def test_sms_only_staff_are_enough_for_urgent_complaints_but_not_for_other_negatives():
    sms_only = BranchAlerts(sms=("+8613800000101",))
    assert not needs_recipient(feedback(kind="complaint", urgent=True), sms_only)
    assert needs_recipient(feedback(kind="complaint"), sms_only)
    assert alerts_for(feedback(kind="complaint"), sms_only, DAY, QUIET, ZONE) == []


def test_the_alert_names_the_feedback_and_its_path_never_the_member():
    event = load_event(FeedbackSubmitted, {**EVENTS.wire("feedback_submitted", {
        **FeedbackSubmitted.sample, "branch": "SH01", "kind": "complaint", "satisfaction": None, "nps": None,
        "urgent": True}), "event_id": "e-1", "occurred_at": None})
    feedback_id = str(FeedbackSubmitted.sample["feedback_id"])
    context = context_of(Feedback.from_event(event))
    assert context == {"feedback_id": feedback_id, "branch": "SH01", "kind": "complaint", "satisfaction": None,
                       "nps": None, "urgent": True, "path": f"/v1/feedback/{feedback_id}"}
    assert str(event["member_id"]) not in str(context)


@pytest.mark.parametrize("language", ["zh-Hans", "en"])
@pytest.mark.parametrize("channel", ["email", "sms"])
def test_the_alert_renders_in_the_group_language_and_english(language, channel):
    rendered = Renderer(group_from_config({})).render("feedback_alert", channel, language, SAMPLE)
    assert rendered.language == language
    assert SAMPLE["path"] in rendered.text and SAMPLE["path"] in rendered.body
    assert ("30" in rendered.subject) and "Shanghai Jing'an" in rendered.subject


def test_the_alert_falls_back_to_english_for_another_group_language():
    group = group_from_config({})
    spanish = type(group)(**{**group.__dict__, "default_language": "es"})
    assert Renderer(spanish).render("feedback_alert", "email", "es", SAMPLE).language == "en"
