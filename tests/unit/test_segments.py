"""Segments, RFM scores and churn risk at their boundaries."""

from datetime import date, timedelta

import pytest

from services.members.rules.programme import SegmentRules
from services.members.rules.segments import (
    Bounds,
    Facts,
    churn_risk,
    grade,
    quintile_ranks,
    rank_for_share,
    score,
    segment_of,
    usual_interval_days,
)

RULES = SegmentRules()
TODAY = date(2026, 6, 1)
BOUNDS = Bounds(revenue_a=800_000, revenue_b=300_000, recency=(date(2025, 9, 1), date(2025, 12, 1),
                                                               date(2026, 2, 1), date(2026, 4, 1)),
                frequency=(1, 2, 3, 5), monetary=(100_000, 200_000, 300_000, 800_000))


@pytest.mark.parametrize(("count", "share", "rank"), [
    (10, 2_000, 8),  # values above the 8th of 10 are the top 20 %
    (10, 5_000, 5),
    (7, 2_000, 6),  # ceil(5.6)
    (1, 2_000, 1),
    (0, 2_000, 0),
    (10, 10_000, 0),  # everybody
])
def test_rank_for_share_is_percentile_disc_in_integers(count, share, rank):
    assert rank_for_share(count, share) == rank


def test_quintile_ranks():
    assert quintile_ranks(10) == (2, 4, 6, 8)
    assert quintile_ranks(3) == (1, 2, 2, 3)
    assert quintile_ranks(0) == ()


@pytest.mark.parametrize(("value", "expected"), [
    (None, 1), (0, 1), (1, 1), (2, 2), (3, 3), (4, 4), (5, 4), (6, 5),
])
def test_score_counts_the_cuts_a_value_is_strictly_above(value, expected):
    assert score(value, (1, 2, 3, 5)) == expected


@pytest.mark.parametrize(("facts", "segment"), [
    (Facts(spend_12m_minor=800_001), "A"),
    (Facts(spend_12m_minor=800_000), "B"),  # at the cut is not above it
    (Facts(spend_12m_minor=300_001), "B"),
    (Facts(spend_12m_minor=300_000), "C"),
    (Facts(visits_12m=24), "A"),  # 2 a month
    (Facts(visits_12m=23), "B"),
    (Facts(visits_12m=4), "B"),  # quarterly
    (Facts(visits_12m=3), "C"),
    (Facts(), "C"),
])
def test_segment_by_revenue_share_or_visit_frequency(facts, segment):
    assert segment_of(RULES, BOUNDS, facts) == segment


def test_without_revenue_anywhere_only_visits_decide():
    assert segment_of(RULES, Bounds(), Facts(visits_12m=4)) == "B"
    assert segment_of(RULES, Bounds(), Facts(spend_12m_minor=1)) == "C"


def test_usual_interval_is_the_mean_gap_between_visits():
    assert usual_interval_days(Facts(visits_total=3, first_visit_on=date(2026, 1, 1),
                                     last_visit_on=date(2026, 3, 2))) == 30
    assert usual_interval_days(Facts(visits_total=1, first_visit_on=TODAY, last_visit_on=TODAY)) is None


@pytest.mark.parametrize(("days_since", "risk"), [(150, False), (151, True)])
def test_churn_risk_after_one_and_a_half_usual_intervals(days_since, risk):
    last = TODAY - timedelta(days=days_since)
    facts = Facts(visits_total=2, first_visit_on=last - timedelta(days=100), last_visit_on=last)
    assert churn_risk(RULES, facts, TODAY) is risk


@pytest.mark.parametrize(("days_since", "risk"), [(270, False), (271, True)])
def test_a_single_visit_uses_the_default_interval(days_since, risk):
    last = TODAY - timedelta(days=days_since)
    assert churn_risk(RULES, Facts(visits_total=1, first_visit_on=last, last_visit_on=last), TODAY) is risk


def test_a_member_who_never_came_is_not_churning():
    assert churn_risk(RULES, Facts(), TODAY) is False


def test_grade_combines_segment_rfm_and_churn():
    facts = Facts(spend_12m_minor=250_000, visits_12m=3, visits_total=5, first_visit_on=date(2025, 6, 1),
                  last_visit_on=date(2026, 3, 1))
    result = grade(RULES, BOUNDS, facts, TODAY)
    assert (result.segment, result.rfm, result.churn_risk, result.usual_interval_days) == \
        ("C", {"r": 4, "f": 3, "m": 3}, False, 68)
    nobody = grade(RULES, BOUNDS, Facts(), TODAY)
    assert (nobody.segment, nobody.rfm, nobody.churn_risk) == ("C", {"r": 1, "f": 1, "m": 1}, False)


def test_bounds_survive_the_job_cursor():
    assert Bounds.from_json(BOUNDS.to_json()) == BOUNDS
