"""Tier rules at their boundaries: exactly at a threshold qualifies, one minor unit below does not."""

from dataclasses import replace
from datetime import date

import pytest

from services.members.rules.programme import DEFAULT_PROGRAMME, ReviewRules
from services.members.rules.tiers import (
    Activity,
    Change,
    add_months,
    end_of_notice,
    evaluate,
    last_anniversary,
    missing_for,
    next_anniversary,
    points_may_upgrade,
    review,
    upgrade,
    window,
)

P = DEFAULT_PROGRAMME
FIELD = {"spend": "spend_minor", "top_up": "largest_top_up_minor", "points": "points", "visits": "visits"}
THRESHOLDS = [  # tier, path, threshold (minor units, points or visits), the tier one unit below falls to
    ("silver", "spend", 500_000, "standard"), ("silver", "top_up", 300_000, "standard"),
    ("silver", "points", 5_000, "standard"), ("silver", "visits", 6, "standard"),
    ("gold", "spend", 2_000_000, "silver"), ("gold", "top_up", 1_000_000, "silver"),
    ("gold", "points", 20_000, "silver"), ("gold", "visits", 12, "silver"),
    ("diamond", "spend", 5_000_000, "gold"), ("diamond", "top_up", 3_000_000, "gold"),
    ("diamond", "points", 50_000, "gold"), ("diamond", "visits", 24, "gold"),
]


@pytest.mark.parametrize(("tier", "path", "threshold", "below"), THRESHOLDS)
def test_exactly_at_the_threshold_qualifies_by_that_path(tier, path, threshold, below):
    qualification = evaluate(P, Activity(**{FIELD[path]: threshold}))
    assert (qualification.tier, qualification.path, qualification.paths) == (tier, path, (path,))


@pytest.mark.parametrize(("tier", "path", "threshold", "below"), THRESHOLDS)
def test_one_unit_below_the_threshold_does_not(tier, path, threshold, below):
    assert evaluate(P, Activity(**{FIELD[path]: threshold - 1})).tier == below


def test_nothing_earns_the_entry_tier_with_no_path():
    qualification = evaluate(P, Activity())
    assert (qualification.tier, qualification.path, qualification.paths) == ("standard", None, ())


def test_several_paths_are_all_reported_spend_first():
    qualification = evaluate(P, Activity(spend_minor=2_000_000, visits=12, points=5_000))
    assert qualification.tier == "gold" and qualification.paths == ("spend", "visits")


def test_upgrade_may_jump_several_steps_and_never_goes_down():
    assert upgrade(P, "standard", evaluate(P, Activity(spend_minor=5_000_000))) == \
        Change("standard", "diamond", "up", "spend")
    assert upgrade(P, "gold", evaluate(P, Activity(spend_minor=500_000))) is None
    assert upgrade(P, "silver", evaluate(P, Activity(visits=6))) is None


@pytest.mark.parametrize(("held", "points", "may"), [
    ("standard", 4_999, False), ("standard", 5_000, True), ("silver", 5_000, False), ("silver", 19_999, False),
    ("silver", 20_000, True), ("gold", 50_000, True), ("diamond", 10**9, False), ("retired-tier", 10**9, False),
])
def test_points_may_upgrade_only_when_they_reach_a_higher_tiers_points_threshold(held, points, may):
    assert points_may_upgrade(P, held, points) is may
    # the rule it stands for: with nothing but these points, evaluating would upgrade exactly when it says so
    assert (upgrade(P, held, evaluate(P, Activity(points=points))) is not None) is may


def test_points_may_upgrade_never_when_no_higher_tier_has_a_points_path():
    no_points = replace(P, tiers=tuple(replace(tier, thresholds=replace(tier.thresholds, points_12m=None))
                                       for tier in P.tiers))
    assert not points_may_upgrade(no_points, "standard", 10**9)


@pytest.mark.parametrize(("held", "activity", "action", "target"), [
    ("gold", Activity(spend_minor=2_000_000), "keep", "gold"),
    ("gold", Activity(spend_minor=5_000_000), "raise", "diamond"),
    ("gold", Activity(spend_minor=1_999_999), "notice", "silver"),
    ("diamond", Activity(), "notice", "gold"),  # one step at most, however little the activity
    ("silver", Activity(), "notice", "standard"),
    ("standard", Activity(), "keep", "standard"),
])
def test_review_keeps_raises_or_gives_notice_of_one_step_down(held, activity, action, target):
    decision = review(P, held, evaluate(P, activity))
    assert (decision.action, decision.target) == (action, target)


def test_review_without_notice_lowers_at_once_and_steps_are_configurable():
    quick = replace(P, review=ReviewRules(notice_days=0, max_steps_down=2))
    decision = review(quick, "diamond", evaluate(quick, Activity()))
    assert (decision.action, decision.target) == ("lower", "silver")


@pytest.mark.parametrize(("held", "announced", "activity", "expected"), [
    ("gold", "silver", Activity(), Change("gold", "silver", "down", "review")),
    ("gold", "silver", Activity(spend_minor=2_000_000), None),  # earned it back during the notice
    ("diamond", "gold", Activity(visits=6), Change("diamond", "gold", "down", "review")),  # never below announced
    ("silver", "standard", Activity(points=5_000), None),
    ("silver", "standard", Activity(points=4_999), Change("silver", "standard", "down", "review")),
])
def test_end_of_notice_drops_to_the_announced_tier_unless_requalified(held, announced, activity, expected):
    assert end_of_notice(P, held, announced, evaluate(P, activity)) == expected


def test_missing_for_says_what_the_next_tier_needs_path_by_path():
    assert missing_for(P, "standard", Activity(spend_minor=499_999, visits=6)) == {
        "tier": "silver", "needs": {"spend": 1, "top_up": 300_000, "points": 5_000, "visits": 0}}
    assert missing_for(P, "diamond", Activity()) is None


@pytest.mark.parametrize(("as_of", "first"), [
    (date(2026, 3, 15), date(2025, 3, 16)),
    (date(2024, 2, 29), date(2023, 3, 1)),
    (date(2025, 3, 31), date(2024, 4, 1)),
    (date(2026, 1, 1), date(2025, 1, 2)),
])
def test_the_window_is_the_twelve_months_ending_on_the_day(as_of, first):
    assert window(as_of) == (first, as_of)


@pytest.mark.parametrize(("day", "months", "expected"), [
    (date(2026, 3, 31), -1, date(2026, 2, 28)),
    (date(2024, 3, 31), -1, date(2024, 2, 29)),
    (date(2026, 1, 15), -13, date(2024, 12, 15)),
    (date(2025, 11, 30), 3, date(2026, 2, 28)),
])
def test_add_months_clamps_to_the_end_of_the_month(day, months, expected):
    assert add_months(day, months) == expected


@pytest.mark.parametrize(("anchor", "after", "expected"), [
    (date(2025, 6, 10), date(2025, 6, 10), date(2026, 6, 10)),
    (date(2025, 6, 10), date(2026, 6, 9), date(2026, 6, 10)),
    (date(2025, 6, 10), date(2026, 6, 10), date(2027, 6, 10)),
    (date(2024, 2, 29), date(2024, 2, 29), date(2025, 2, 28)),
    (date(2024, 2, 29), date(2027, 3, 1), date(2028, 2, 29)),
])
def test_next_anniversary_of_an_enrolment(anchor, after, expected):
    assert next_anniversary(anchor, after) == expected


@pytest.mark.parametrize(("anchor", "on", "expected"), [
    (date(2025, 6, 10), date(2026, 6, 9), date(2025, 6, 10)),
    (date(2025, 6, 10), date(2026, 6, 10), date(2026, 6, 10)),
    (date(2024, 2, 29), date(2025, 3, 1), date(2025, 2, 28)),
])
def test_last_anniversary_starts_the_membership_year(anchor, on, expected):
    assert last_anniversary(anchor, on) == expected
