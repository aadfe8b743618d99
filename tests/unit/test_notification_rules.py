"""The rules of sending, without broker or database: quiet hours, the cap, consents, channel choice, retries."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.notifications.rules.addresses import address_problem
from services.notifications.rules.sending import (
    Contact,
    Defer,
    Preferences,
    QuietHours,
    Send,
    Suppress,
    decide,
    retry_delay,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NIGHT = QuietHours.parse("21:00-08:00")
ALL = frozenset({"wechat", "line", "sms", "email", "inbox"})
ORDER = ("wechat", "line", "sms", "email", "inbox")


def local(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """A moment in March 2027, given in Shanghai time."""
    return datetime(2027, 3, day, hour, minute, second, tzinfo=SHANGHAI).astimezone(UTC)


def contact(**overrides) -> Contact:
    base = {"member_id": "m1", "status": "active", "language": "en",
            "consents": {"sms": True, "email": True, "wechat": True, "line": True, "marketing": True},
            "addresses": {"sms": "+8613800138000", "email": "anna@example.com", "wechat": "oW2dq5Nf0F9vKzZ1t4f0PaYc3Qk8",
                          "line": "U" + "0" * 32, "inbox": "m1"}}
    base.update(overrides)
    return Contact(**base)


NO_CHOICES = Preferences()


def judge(category="service", who=None, prefs=NO_CHOICES, requested=None, available=ALL, now=None,
          expires_at=None, sent=0, cap=2, quiet=NIGHT):
    return decide(category=category, contact=who or contact(), prefs=prefs, requested_channel=requested,
                  available=available, default_order=ORDER, now=now or local(10, 10), zone=SHANGHAI, quiet=quiet,
                  expires_at=expires_at, marketing_sent=sent, cap=cap)


@pytest.mark.parametrize(("moment", "quiet"), [
    ((10, 20, 59, 59), False),
    ((10, 21, 0, 0), True),
    ((10, 22, 30, 0), True),
    ((11, 0, 0, 0), True),
    ((11, 7, 59, 59), True),
    ((11, 8, 0, 0), False),
    ((11, 12, 0, 0), False),
])
def test_quiet_hours_boundaries(moment, quiet):
    at = local(*moment)
    assert NIGHT.contains(at.astimezone(SHANGHAI).time().replace(tzinfo=None)) is quiet
    assert (NIGHT.release(at, SHANGHAI) > at) is quiet


@pytest.mark.parametrize(("moment", "released"), [
    ((10, 22, 30), (11, 8, 0)),  # the evening: tomorrow morning
    ((11, 1, 0), (11, 8, 0)),  # after midnight: this morning
    ((11, 7, 59), (11, 8, 0)),
    ((11, 8, 0), (11, 8, 0)),  # already morning: at once
    ((10, 20, 59), (10, 20, 59)),
])
def test_a_message_due_in_quiet_hours_is_released_at_the_end_of_them(moment, released):
    assert NIGHT.release(local(*moment), SHANGHAI) == local(*released)


def test_quiet_hours_within_a_day_and_switched_off():
    lunch = QuietHours.parse("12:00-14:00")
    assert lunch.contains(time(12, 0)) and lunch.contains(time(13, 59)) and not lunch.contains(time(14, 0))
    assert not lunch.contains(time(23, 0))
    off = QuietHours.parse("off")
    assert not off.enabled and off.release(local(10, 23), SHANGHAI) == local(10, 23)
    with pytest.raises(ValueError):
        QuietHours.parse("21:00")


def test_at_22_30_the_decision_is_to_wait_for_08_00():
    decision = judge(now=local(10, 22, 30))
    assert decision == Defer(local(11, 8), "quiet_hours")


def test_a_message_whose_moment_passes_during_the_night_is_suppressed_for_quiet_hours():
    decision = judge(now=local(10, 22, 30), expires_at=local(11, 7, 30))
    assert isinstance(decision, Suppress) and decision.reason == "quiet_hours"


@pytest.mark.parametrize(("sent", "cap", "allowed"), [(0, 2, True), (1, 2, True), (2, 2, False), (5, 2, False),
                                                      (0, 0, False)])
def test_weekly_marketing_cap_boundaries(sent, cap, allowed):
    decision = judge(category="marketing", sent=sent, cap=cap)
    assert isinstance(decision, Send) is allowed
    if not allowed:
        assert decision.reason == "cap"


def test_the_cap_does_not_apply_to_service_messages():
    assert isinstance(judge(category="service", sent=10, cap=2), Send)


@pytest.mark.parametrize(("category", "who", "prefs", "reason"), [
    ("marketing", contact(consents={"sms": True}), Preferences(), "no_consent"),
    ("marketing", contact(), Preferences(marketing_opt_out=True), "opted_out"),
    ("service", contact(), Preferences(service_opt_out=True), "opted_out"),
    ("service", contact(status="closed"), Preferences(), "member_closed"),
    ("marketing", contact(status="closed"), Preferences(), "member_closed"),
    ("service", contact(status="merged"), Preferences(), "member_merged"),
])
def test_consents_opt_outs_and_closed_members(category, who, prefs, reason):
    decision = judge(category=category, who=who, prefs=prefs)
    assert isinstance(decision, Suppress) and decision.reason == reason


def test_service_messages_do_not_need_marketing_consent():
    assert judge(category="service", who=contact(consents={"sms": True})) == Send("sms", "+8613800138000")


@pytest.mark.parametrize(("who", "prefs", "requested", "available", "expected"), [
    (contact(), Preferences(), None, ALL, Send("wechat", "oW2dq5Nf0F9vKzZ1t4f0PaYc3Qk8")),
    (contact(), Preferences(channels=("sms", "email")), None, ALL, Send("sms", "+8613800138000")),
    (contact(consents={"email": True}), Preferences(channels=("sms", "email")), None, ALL,
     Send("email", "anna@example.com")),
    (contact(), Preferences(), None, frozenset({"sms", "inbox"}), Send("sms", "+8613800138000")),
    (contact(consents={}), Preferences(), None, ALL, Send("inbox", "m1")),
    (contact(), Preferences(), "email", ALL, Send("email", "anna@example.com")),
])
def test_the_first_usable_channel_in_the_members_order_wins(who, prefs, requested, available, expected):
    assert judge(who=who, prefs=prefs, requested=requested, available=available) == expected


@pytest.mark.parametrize(("who", "prefs", "requested", "reason"), [
    (contact(consents={"sms": False}), Preferences(channels=("sms",)), None, "no_consent"),
    (contact(consents={}), Preferences(), "sms", "no_consent"),
    (contact(addresses={"sms": None, "inbox": "m1"}), Preferences(channels=("sms",)), None, "no_address"),
    (contact(addresses={"sms": "13800138000", "inbox": "m1"}), Preferences(channels=("sms",)), None,
     "invalid_address"),
    (contact(), Preferences(), "line", None),
])
def test_a_channel_that_cannot_be_used_is_a_recorded_suppression(who, prefs, requested, reason):
    decision = judge(who=who, prefs=prefs, requested=requested, available=ALL - {"line"})
    assert isinstance(decision, Suppress)
    assert decision.reason == (reason or "no_address") and decision.detail


@pytest.mark.parametrize(("channel", "address", "ok"), [
    ("sms", "+8613800138000", True), ("sms", "13800138000", False), ("sms", "+0123", False),
    ("email", "anna@example.com", True), ("email", "anna@", False), ("email", "Anna <anna@example.com>", False),
    ("line", "U" + "a" * 32, True), ("line", "u" + "a" * 32, False), ("line", "U" + "a" * 31, False),
    ("wechat", "oW2dq5Nf0F9vKzZ1t4f0PaYc3Qk8", True), ("wechat", "not an openid!", False),
    ("inbox", "anything", True), ("fax", "123", False),
])
def test_addresses_are_checked_before_any_provider_call(channel, address, ok):
    assert (address_problem(channel, address) is None) is ok


def test_retries_back_off_exponentially_with_jitter_up_to_a_cap():
    rand = random.Random(7)
    for attempt, step in [(1, 60), (2, 120), (3, 240), (4, 480), (10, 3600)]:
        for _ in range(50):
            delay = retry_delay(attempt, 60, 3600, None, rand)
            assert step / 2 <= delay <= step
    delays = {round(retry_delay(1, 60, 3600, None, rand), 3) for _ in range(20)}
    assert len(delays) > 10  # jittered: failures together do not come back together


def test_a_providers_retry_after_is_a_floor():
    assert retry_delay(1, 60, 3600, 300, random.Random(1)) == 300
    assert 30 <= retry_delay(1, 60, 3600, 1, random.Random(1)) <= 60


def test_a_message_past_its_expiry_is_not_sent():
    decision = judge(now=local(10, 10), expires_at=local(10, 10) - timedelta(seconds=1))
    assert isinstance(decision, Suppress) and decision.reason == "expired"
