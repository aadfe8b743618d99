"""Composed journeys' rules (``services.notifications.rules.composed``): what may be activated, what starts a
run, what a run does next, and what a dry run counts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from jinja2.exceptions import SecurityError

from services.notifications.rules import composed

LANGUAGES = ("en", "zh-Hans", "zh-Hant", "es")
TEXTS = {language: {"subject": "After your implant", "text": "Dear {{ member.name }}, rest today."}
         for language in LANGUAGES}
NOW = datetime(2027, 1, 5, 2, tzinfo=UTC)


def journey(**changes):
    definition = {"name": "Implant post-op", "category": "service", "branches": ["SH01"],
                  "trigger": {"event": "visit_completed", "schedule": None, "categories": ["implant"], "tiers": [],
                              "segments": []},
                  "steps": [{"wait": {"days": 3, "hours": 0}}, {"message": {"texts": TEXTS}},
                            {"task": {"queue": "consultant", "due_in_days": 0, "note": None}}],
                  "exits": ["appointment_booked"]}
    return {**definition, **changes}


def problems(definition):
    return composed.problems(definition, languages=LANGUAGES, queues=("customer_service", "consultant", "clinician"),
                             branches=("SH01", "SH02"), segments=("A", "B", "C"),
                             categories=("exam", "implant", "cleaning"))


def test_a_complete_journey_may_be_activated():
    assert problems(journey()) == {}


@pytest.mark.parametrize(("changes", "field"), [
    ({"steps": [{"message": {"texts": {k: v for k, v in TEXTS.items() if k != "es"}}}]}, "steps.0.message.texts.es"),
    ({"steps": [{"wait": {"days": 0, "hours": 0}}, {"message": {"texts": TEXTS}}]}, "steps.0.wait"),
    ({"steps": [{"task": {"queue": "dentist", "due_in_days": 0, "note": None}}]}, "steps.0.task.queue"),
    ({"steps": [{"message": {"texts": {**TEXTS, "en": {"subject": "Hi {{ member.phone_number", "text": "x"}}}}]},
     "steps.0.message.texts.en.subject"),
    ({"steps": [{"message": {"texts": {**TEXTS, "en": {"subject": "Hi {{ secret }}", "text": "x"}}}}]},
     "steps.0.message.texts.en.subject"),
    ({"steps": [{"wait": {"days": 3, "hours": 0}}]}, "steps"),
    ({"steps": []}, "steps"),
    ({"trigger": {"event": "visit_started", "schedule": None, "categories": [], "tiers": [], "segments": []}},
     "trigger.event"),
    ({"trigger": {"event": None, "schedule": {"every": "week", "weekday": None}, "categories": [], "tiers": [],
                  "segments": []}}, "trigger.schedule.weekday"),
    ({"branches": ["XX99"]}, "branches"),
    ({"trigger": {"event": "tier_changed", "schedule": None, "categories": ["implant"], "tiers": [],
                  "segments": []}}, "trigger.categories"),
])
def test_what_stops_activation_is_named_by_field(changes, field):
    assert field in problems(journey(**changes))


def fact(event="visit_completed", member="m-1", cause="visit:v-1", branch="SH01", at=NOW, **facts):
    return composed.Fact(event, member, cause, branch, at, facts or {"categories": ["implant"]})


def test_a_visit_starts_a_run_only_at_the_journeys_branches_and_categories():
    definition = journey()
    assert composed.starts(definition, fact())
    assert not composed.starts(definition, fact(branch="SH02"))
    assert not composed.starts(definition, fact(categories=["cleaning"]))
    assert not composed.starts(definition, fact(event="appointment_booked"))


def test_a_tier_trigger_starts_on_upgrades_to_the_tiers_named():
    definition = journey(trigger={"event": "tier_changed", "schedule": None, "categories": [], "tiers": ["gold"],
                                  "segments": []}, branches=[])
    assert composed.starts(definition, fact("tier_changed", branch=None, tier="gold", direction="up"))
    assert not composed.starts(definition, fact("tier_changed", branch=None, tier="gold", direction="down"))
    assert not composed.starts(definition, fact("tier_changed", branch=None, tier="silver", direction="up"))
    assert not composed.needs_member(definition)


def test_a_run_takes_steps_until_a_wait_and_finishes_after_the_last():
    steps = journey()["steps"]
    first = composed.advance(steps, 0, NOW)
    assert first.actions == [] and first.next_step == 1 and first.due_at == NOW + timedelta(days=3)
    second = composed.advance(steps, 1, NOW + timedelta(days=3))
    assert [index for index, _ in second.actions] == [1, 2] and second.due_at is None


def test_schedules_fire_on_their_days():
    assert composed.scheduled_on({"every": "week", "weekday": 2}, date(2027, 1, 5))  # a Tuesday
    assert not composed.scheduled_on({"every": "week", "weekday": 1}, date(2027, 1, 5))
    assert composed.scheduled_on({"every": "month", "day": 5}, date(2027, 1, 5))
    assert composed.scheduled_on({"every": "once", "on": date(2027, 1, 5)}, date(2027, 1, 5))


def test_the_dry_run_counts_one_run_per_cause_less_those_who_booked_before_the_step():
    facts = [fact(member="m-1", cause="visit:v-1"), fact(member="m-1", cause="visit:v-1"),  # the same cause twice
             fact(member="m-2", cause="visit:v-2"), fact(member="m-3", cause="visit:v-3", categories=["exam"])]
    booked = [fact("appointment_booked", member="m-2", cause="appointment:a", at=NOW + timedelta(days=1))]
    counts = composed.dry_run(journey(), facts, booked)
    assert [c["members"] for c in counts] == [2, 1, 1]


def test_texts_fall_back_to_the_groups_language_and_render_in_the_sandbox():
    language, texts = composed.pick_texts({"zh-Hans": {"subject": "s", "text": "t"}}, "es", "zh-Hans")
    assert language == "zh-Hans"
    assert composed.render_text("Dear {{ member.name }}", {"member": {"name": "Anna"}}) == "Dear Anna"
    with pytest.raises(SecurityError):
        composed.render_text("{{ ''.__class__.__mro__ }}", {})


SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_a_wait_may_end_at_a_local_time_and_a_message_lapse_from_the_trigger():
    moment = datetime(2027, 1, 5, 20, tzinfo=UTC)  # 04:00 on 6 January in Shanghai
    assert composed.after(moment, {"days": 1, "at": "10:00"}, SHANGHAI) == datetime(2027, 1, 7, 2, tzinfo=UTC)
    assert composed.after(moment, {"days": 0, "hours": 5}, SHANGHAI) == datetime(2027, 1, 6, 1, tzinfo=UTC)
    definition = journey(exits=[], steps=[{"wait": {"hours": 2}},
                                          {"message": {"texts": TEXTS, "expires_after": {"hours": 3}}},
                                          {"wait": {"days": 1, "at": "10:00"}}, {"message": {"texts": TEXTS}}])
    assert composed.plannable(definition)
    planned = composed.plan(definition, moment, moment, SHANGHAI)
    assert [(p.index, p.due_at, p.expires_at) for p in planned] == [
        (1, moment + timedelta(hours=2), moment + timedelta(hours=3)), (3, datetime(2027, 1, 7, 2, tzinfo=UTC), None)]
    late = composed.plan(definition, moment, moment + timedelta(hours=4), SHANGHAI)  # the first lapsed
    assert [p.index for p in late] == [3]


def test_what_a_run_must_wait_for_is_walked_not_planned():
    assert not composed.plannable(journey())  # a task and an exit
    assert not composed.plannable(journey(exits=[], steps=[{"message": {"texts": TEXTS}}],
                                          trigger={"event": "visit_completed", "segments": ["A"]}))


@pytest.mark.parametrize(("message", "field"), [
    ({"template": "welcome"}, "steps.1.message.template"),  # reads a member_enrolled trigger's facts
    ({"template": "no_such"}, "steps.1.message.template"),
    ({"template": "post_visit_advice", "texts": TEXTS}, "steps.1.message"),
    ({"template": "post_visit_advice", "coupon": {"reward_id": "r-1"}}, "steps.1.message.coupon"),
    ({"texts": {**TEXTS, "en": {"subject": "x", "text": "{{ coupon.code }}"}}}, "steps.1.message.texts.en.text"),
])
def test_a_message_is_its_own_words_or_a_template_of_its_trigger(message, field):
    definition = journey(steps=[{"wait": {"days": 3}}, {"message": message}])
    assert field in problems(definition)


def test_a_coupon_may_be_shown_by_the_words_that_carry_it():
    words = {**TEXTS, "en": {"subject": "Gift", "text": "Your code: {{ coupon.code }}"}}
    definition = journey(steps=[{"message": {"texts": words, "coupon": {"reward_id": "r-1"}}}])
    assert problems(definition) == {}
    assert composed.coupons_of(definition) == [("steps.0.message.coupon.reward_id", "r-1")]
