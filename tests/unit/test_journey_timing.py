"""When each journey's message is due, and what makes it unique: no broker, no database."""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.kit.contracts import Event, load_event
from services.kit.errors import Invalid
from services.members.events import TierChanged
from services.notifications.rules import composed, journeys
from services.notifications.settings import Settings, settings_from_config
from services.records.events import AppointmentBooked, VisitCompleted

SHANGHAI = ZoneInfo("Asia/Shanghai")
SETTINGS = Settings()
MEMBER = uuid.UUID("0b5e1c2d-0000-4000-8000-000000000001")
APPOINTMENT = uuid.UUID("0b5e1c2d-0000-4000-8000-000000000002")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def received(contract: type[Event], **changes: object) -> dict:
    """What a handler is given: the producer's sample with ``changes``, sent and loaded through its contract."""
    body = sys.modules[contract.__module__].EVENTS.wire(contract.event_type, {**contract.sample, **changes})
    return load_event(contract, {**body, "event_id": "e-1", "occurred_at": "2027-03-01T00:00:00Z"})


def appointment(starts_at: str) -> dict:
    return received(AppointmentBooked, appointment_id=APPOINTMENT, member_id=MEMBER, branch="SH01", doctor_id="d-1",
                    starts_at=utc(starts_at), ends_at=utc(starts_at), service_category="cleaning")


@pytest.mark.parametrize(("booked_at", "reminders"), [
    ("2027-03-01T00:00:00Z", ["2027-03-09T02:30:00Z", "2027-03-10T00:30:00Z"]),  # days ahead: both
    ("2027-03-09T02:29:59Z", ["2027-03-09T02:30:00Z", "2027-03-10T00:30:00Z"]),  # just over 24 h ahead
    ("2027-03-09T02:30:00Z", ["2027-03-10T00:30:00Z"]),  # exactly 24 h ahead: only the 2 h one
    ("2027-03-10T00:30:00Z", []),  # 2 h ahead: the confirmation says it all
])
def test_reminders_24_and_2_hours_before_only_if_still_ahead(booked_at, reminders):
    plans = journeys.appointment_messages(appointment("2027-03-10T02:30:00Z"), utc(booked_at), SETTINGS)
    assert plans[0].journey == "appointment_confirmation" and plans[0].due_at == utc(booked_at)
    assert [p.due_at for p in plans[1:]] == [utc(r) for r in reminders]
    assert all(p.expires_at == utc("2027-03-10T02:30:00Z") for p in plans)
    assert {p.cause_ref for p in plans} == {f"appointment:{APPOINTMENT}"}
    assert plans[0].context == {"appointment_id": str(APPOINTMENT), "branch": "SH01", "starts_at": "2027-03-10T02:30:00Z",
                                "ends_at": "2027-03-10T02:30:00Z", "service_category": "cleaning", "doctor_id": "d-1",
                                "rescheduled": False}


def test_a_branch_with_its_own_schedule_reminds_a_week_two_days_and_two_hours_before():
    settings = settings_from_config({"NOTIFICATIONS": {"reminder_hours_by_branch": {"SH01": [168, 48, 2]}}})
    plans = journeys.appointment_messages(appointment("2027-03-10T02:30:00Z"), utc("2027-03-01T00:00:00Z"), settings)
    assert [(p.due_at, p.context["hours_before"]) for p in plans[1:]] == [
        (utc("2027-03-03T02:30:00Z"), 168), (utc("2027-03-08T02:30:00Z"), 48), (utc("2027-03-10T00:30:00Z"), 2)]
    assert len({p.dedupe_key for p in plans}) == 4
    other = journeys.appointment_messages({**appointment("2027-03-10T02:30:00Z"), "branch": "SH02"},
                                          utc("2027-03-01T00:00:00Z"), settings)
    assert [p.context["hours_before"] for p in other[1:]] == [24, 2]  # the group's schedule elsewhere


def test_a_past_appointment_gets_nothing_and_a_new_time_is_a_new_cause():
    assert journeys.appointment_messages(appointment("2027-03-10T02:30:00Z"), utc("2027-03-10T02:30:00Z"),
                                         SETTINGS) == []
    first = journeys.appointment_messages(appointment("2027-03-10T02:30:00Z"), utc("2027-03-01T00:00:00Z"), SETTINGS)
    moved = journeys.appointment_messages(appointment("2027-03-11T02:30:00Z"), utc("2027-03-01T00:00:00Z"), SETTINGS,
                                          rescheduled=True)
    assert not {p.dedupe_key for p in first} & {p.dedupe_key for p in moved}
    assert moved[0].context["rescheduled"] is True


@pytest.mark.parametrize(("earned_at", "day", "due"), [
    ("2027-03-10T10:59:59Z", date(2027, 3, 10), "2027-03-10T11:00:00Z"),  # 18:59:59 local: today's digest
    ("2027-03-10T11:00:00Z", date(2027, 3, 11), "2027-03-11T11:00:00Z"),  # 19:00: tomorrow's
    ("2027-03-10T16:30:00Z", date(2027, 3, 11), "2027-03-11T11:00:00Z"),  # 00:30 on the 11th
])
def test_points_digest_slot_cuts_at_the_digest_time(earned_at, day, due):
    assert journeys.digest_slot(utc(earned_at), SETTINGS, SHANGHAI) == (day, utc(due))


def visit(**extra) -> dict:
    items = [{"category": "implant", "code": None, "amount_minor": 1}, {"category": "exam", "code": None,
                                                                        "amount_minor": 1}]
    return received(VisitCompleted, **{"member_id": MEMBER, "branch": "SH01", "kind": "first", "first_visit": True,
                                       "completed_at": utc("2027-03-10T03:00:00Z"), "items": items, **extra})


SHIPPED = composed.shipped(SETTINGS.post_visit_delay, SETTINGS.post_visit_window, SETTINGS.survey_after_days,
                           SETTINGS.send_time)


def visit_plans(event: dict, now: datetime) -> dict[str, list[composed.Planned]]:
    """What the shipped visit journeys (composed defaults) plan for ``event`` at ``now``, by journey."""
    fact = composed.fact_of("visit_completed", event, now)
    return {code: composed.plan(definition, fact.anchor, now, SHANGHAI) for code, definition in SHIPPED.items()
            if composed.starts(definition, fact)}


def test_post_visit_advice_within_hours_and_survey_a_week_later_at_send_time():
    planned = visit_plans(visit(), utc("2027-03-10T03:00:05Z"))
    (advice,), (survey,) = planned["post_visit_advice"], planned["satisfaction_survey"]
    assert advice.due_at == utc("2027-03-10T05:00:00Z") and advice.expires_at == utc("2027-03-13T03:00:00Z")
    assert advice.message == {"template": "post_visit_advice", "expires_after": {"days": 3, "hours": 0}}
    assert survey.due_at == utc("2027-03-17T02:00:00Z")  # 7 days later at 10:00 local
    assert survey.expires_at == utc("2027-03-24T16:00:00Z")  # the end of the 7th local day after that
    fact = composed.fact_of("visit_completed", visit(), utc("2027-03-10T03:00:05Z"))
    assert fact.facts["categories"] == ["exam", "implant"]
    # one survey per member: it is about their first visit, whichever event says so
    assert composed.cause_of(SHIPPED["satisfaction_survey"], fact) == "member"
    assert composed.cause_of(SHIPPED["post_visit_advice"], fact) == f"visit:{VisitCompleted.sample['visit_id']}"


@pytest.mark.parametrize(("now", "journeys_planned"), [
    ("2027-03-12T00:00:00Z", ["post_visit_advice", "satisfaction_survey"]),  # late, but within 3 days
    ("2027-03-13T03:00:00Z", ["satisfaction_survey"]),  # 3 days on: advice no longer helps
])
def test_advice_that_comes_too_late_is_not_planned(now, journeys_planned):
    assert [code for code, planned in visit_plans(visit(), utc(now)).items() if planned] == journeys_planned


def test_no_survey_after_a_return_visit_and_no_advice_after_an_event():
    assert list(visit_plans(visit(first_visit=False), utc("2027-03-10T03:00:00Z"))) == ["post_visit_advice"]
    assert visit_plans(visit(kind="event", first_visit=False), utc("2027-03-10T03:00:00Z")) == {}


def test_the_shipped_journeys_pass_activations_checks_and_are_planned_at_once():
    for definition in SHIPPED.values():
        assert composed.problems(definition, languages=("en", "zh-Hans", "zh-Hant", "es"), queues=(),
                                 branches=("SH01",), segments=("A", "B", "C"), categories=("implant",)) == {}
        assert composed.plannable(definition)


@pytest.mark.parametrize(("day", "month_days"), [
    (date(2027, 2, 28), ["02-28", "02-29"]),
    (date(2028, 2, 28), ["02-28"]),
    (date(2028, 2, 29), ["02-29"]),
    (date(2100, 2, 28), ["02-28", "02-29"]),  # 2100 is not a leap year
    (date(2000, 2, 28), ["02-28"]),  # 2000 was
    (date(2027, 3, 1), ["03-01"]),
])
def test_birthdays_of_29_february_are_greeted_on_28_february_in_common_years(day, month_days):
    assert journeys.birthday_month_days(day) == month_days


def test_birthday_is_once_a_year_with_the_tiers_coupon():
    settings = settings_from_config({"NOTIFICATIONS": {"birthday_coupons": {"gold": {"category": "whitening",
                                                                                       "rate_bp": 2000}}}})
    plan = journeys.birthday({"member_id": "m-1", "tier": "gold"}, date(2027, 3, 10), utc("2027-03-09T16:30:00Z"),
                             settings, SHANGHAI)
    assert plan.dedupe_key == "birthday:m-1:2027" and plan.due_at == utc("2027-03-10T02:00:00Z")
    assert plan.context["coupon_spec"] == {"category": "whitening", "rate_bp": 2000}
    standard = journeys.birthday({"member_id": "m-2", "tier": "standard"}, date(2027, 3, 10),
                                 utc("2027-03-10T05:00:00Z"), settings, SHANGHAI)
    assert standard.context["coupon_spec"]["value_minor"] == 5000
    assert standard.due_at == utc("2027-03-10T05:00:00Z")  # a late scan sends at once, not yesterday


@pytest.mark.parametrize(("attempts", "following"), [(0, date(2027, 4, 21)), (3, date(2027, 4, 21)), (4, None)])
def test_recall_messages_repeat_every_six_weeks_at_most_four_times(attempts, following):
    assert journeys.first_recall_attempt(date(2027, 6, 30), date(2027, 3, 10), SETTINGS) == date(2027, 6, 2)
    assert journeys.first_recall_attempt(date(2027, 3, 20), date(2027, 3, 10), SETTINGS) == date(2027, 3, 10)
    assert journeys.next_recall_attempt(attempts, date(2027, 3, 10), SETTINGS) == following


def test_tier_congratulations_only_upwards():
    congratulations = SHIPPED["tier_upgrade"]
    up = received(TierChanged, member_id=MEMBER, from_tier="silver", to_tier="gold", direction="up",
                  effective_at=utc("2027-03-10T00:00:00Z"))
    fact = composed.fact_of("tier_changed", up, utc("2027-03-10T00:00:00Z"))
    assert composed.starts(congratulations, fact)
    assert fact.facts["from_tier"] == "silver" and fact.facts["to_tier"] == "gold"  # what the template reads
    precise = received(TierChanged, member_id=MEMBER, to_tier="gold", direction="up",
                       effective_at=utc("2027-03-10T00:00:00.250000Z"))  # once per tier and time as it was sent
    assert composed.fact_of("tier_changed", precise, utc("2027-03-10T00:00:00Z")).cause != fact.cause
    down = composed.fact_of("tier_changed", {**up, "direction": "down"}, utc("2027-03-10T00:00:00Z"))
    assert not composed.starts(congratulations, down)


def test_a_manual_message_is_once_per_cause():
    request = {"member_id": "m-1", "journey": "results_ready", "cause": "r-9", "context": {"branch": "SH01"}}
    now = datetime(2027, 3, 10, tzinfo=UTC)
    assert journeys.manual(request, now).dedupe_key == journeys.manual(request, now + timedelta(hours=1)).dedupe_key
    anonymous = {**request, "cause": None}
    assert journeys.manual(anonymous, now).dedupe_key != journeys.manual(anonymous, now).dedupe_key


def test_an_event_missing_what_a_journey_needs_is_invalid():
    body = {**AppointmentBooked.sample, "member_id": str(MEMBER), "event_id": "e-1", "occurred_at": None}
    del body["starts_at"], body["appointment_id"]
    with pytest.raises(Invalid) as raised:  # the handler's contract refuses it: parked at once, never retried
        load_event(AppointmentBooked, body)
    assert set(raised.value.fields) == {"starts_at", "appointment_id"}


def test_settings_from_configuration():
    settings = settings_from_config({"NOTIFICATIONS": {"quiet_hours": "22:00-07:30", "marketing_weekly_cap": "3",
                                                       "digest_time": 1140, "channel_order": "sms, inbox",
                                                       "scheduler": "false", "reminder_hours": [48, 3]}})
    assert settings.quiet_hours.start.hour == 22 and settings.quiet_hours.end.minute == 30
    assert settings.marketing_weekly_cap == 3 and settings.digest_time.hour == 19  # YAML 1.1 read 19:00 as 1140
    assert settings.channel_order == ("sms", "inbox") and settings.scheduler is False
    assert settings.reminder_offsets == (timedelta(hours=48), timedelta(hours=3))
    with pytest.raises(ValueError):
        settings_from_config({"NOTIFICATIONS": {"channel_order": ["sms", "pigeon"]}})


def test_the_birthday_coupon_asked_of_points_and_shown_to_the_member():
    value = journeys.birthday_coupon_request({"category": "cleaning", "value_minor": 5000, "valid_days": 30},
                                             date(2027, 3, 10), "CNY", "Birthday gift")
    assert value == {"source": "birthday", "title": "Birthday gift", "category": "cleaning",
                     "valid_from": "2027-03-10", "valid_until": "2027-04-09",
                     "value": {"amount": 5000, "currency": "CNY"}}
    rate = journeys.birthday_coupon_request({"category": "whitening", "rate_bp": 2000}, date(2027, 3, 10), "CNY", "x")
    assert rate["rate_bp"] == 2000 and "value" not in rate
    answer = {"id": "c-9", "code": "BD-1", "title": "Birthday gift", "category": "cleaning",
              "value": {"amount": 5000, "currency": "CNY"}, "rate_bp": None, "valid_until": "2027-04-09"}
    assert journeys.coupon_facts(answer, value) == {
        "coupon_id": "c-9", "code": "BD-1", "title": "Birthday gift", "category": "cleaning", "value_minor": 5000,
        "currency": "CNY", "rate_bp": None, "valid_until": "2027-04-09"}
