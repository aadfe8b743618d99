"""The earning rules: what a visit, a review or an interaction earns, and what a refund takes back."""

from datetime import date

import pytest

from services.kit.errors import Invalid
from services.points.rules.earning import (
    Item,
    MemberFacts,
    Payment,
    Visit,
    campaign_runs_on,
    category_shares,
    interaction_award,
    qualifying_spend,
    quote_visit,
    reversal_due,
    review_award,
    spend_points,
)
from services.points.rules.programme import DEFAULT_PROGRAMME, Campaign, parse_programme

P = DEFAULT_PROGRAMME
DAY = date(2026, 11, 20)  # a Friday


def visit(paid=100_00, kind="return", payments=None, items=None, day=DAY, branch="SH01", first_paid=False):
    return Visit(branch=branch, kind=kind, day=day,
                 items=tuple(items if items is not None else [Item("treatment", paid)]),
                 payments=tuple(payments if payments is not None else [Payment("cash", paid)]),
                 first_paid_visit=first_paid)


def points_by_rule(lines):
    return [(line.rule, line.points) for line in lines]


@pytest.mark.parametrize(("payments", "qualifying"), [
    ([Payment("cash", 100_00)], 100_00),
    ([Payment("cash", 60_00), Payment("points", 40_00)], 60_00),
    ([Payment("card", 50_00), Payment("coupon", 20_00), Payment("stored_value_bonus", 10_00)], 50_00),
    ([Payment("stored_value", 70_00), Payment("stored_value_bonus", 30_00)], 70_00),
    ([Payment("insurance", 80_00), Payment("mobile", 1)], 80_01),
    ([Payment("points", 100_00)], 0),
])
def test_spend_counts_only_what_the_member_actually_paid(payments, qualifying):
    assert qualifying_spend(P, visit(payments=payments)) == qualifying


def test_without_payments_the_visit_s_own_qualifying_amount_counts():
    facts = Visit(branch="SH01", kind="return", day=DAY, qualifying_minor=123_45)
    assert qualifying_spend(P, facts) == 123_45


@pytest.mark.parametrize(("spend", "tier", "points"), [
    (0, "standard", 0),
    (99, "standard", 0),  # 0.99 CNY: no whole point
    (100, "standard", 1),
    (199, "standard", 1),
    (150_99, "standard", 150),
    (150_99, "silver", 181),  # 150.99 x 1.2 = 181.188
    (150_99, "gold", 226),  # 150.99 x 1.5 = 226.485: rounded down on the exact amount, not on 150
    (150_99, "diamond", 301),
    (100_00, "unknown-tier", 100),
])
def test_spend_points_round_down_on_the_exact_amount(spend, tier, points):
    assert spend_points(P, spend, P.tier_multiplier_bp(tier)) == points


def test_a_cash_visit_earns_spend_and_visit_points():
    lines = quote_visit(P, visit(paid=250_00), MemberFacts())
    assert points_by_rule(lines) == [("spend", 250), ("visit", 10)]
    assert lines[0].basis_minor == 250_00 and lines[1].basis_minor is None


@pytest.mark.parametrize(("kind", "rules"), [
    ("first", [("spend", 100), ("visit", 10)]),
    ("return", [("spend", 100), ("visit", 10)]),
    ("emergency", [("spend", 100), ("visit", 10)]),
    ("free_clinic", [("spend", 100), ("activity", 50)]),
    ("event", [("spend", 100), ("activity", 50)]),
])
def test_visit_kinds_earn_visit_or_activity_points(kind, rules):
    assert points_by_rule(quote_visit(P, visit(kind=kind), MemberFacts())) == rules


def test_a_free_visit_earns_only_the_visit_points():
    assert points_by_rule(quote_visit(P, visit(paid=0), MemberFacts())) == [("visit", 10)]


def test_the_tier_multiplies_spend_only():
    lines = quote_visit(P, visit(paid=100_00), MemberFacts(tier="gold"))
    assert points_by_rule(lines) == [("spend", 150), ("visit", 10)]
    assert lines[0].multiplier_bp == 15_000


def test_first_paid_visit_of_a_referred_member_pays_the_referrer():
    lines = quote_visit(P, visit(first_paid=True), MemberFacts(has_referrer=True))
    assert [(line.rule, line.points, line.to_referrer) for line in lines][-1] == ("referral", 300, True)
    assert not [line for line in quote_visit(P, visit(first_paid=True), MemberFacts()) if line.to_referrer]
    assert not [line for line in quote_visit(P, visit(), MemberFacts(has_referrer=True)) if line.to_referrer]


MEMBER_DAY = Campaign(code="member-day", name="Member day", days_of_month=(18,), multiplier_bp=20_000)
IMPLANT_DOUBLE = Campaign(code="implants", name="Implant month", starts_on=date(2026, 11, 1),
                          ends_on=date(2026, 11, 30), categories=("implant",), multiplier_bp=20_000)
GOLD_BONUS = Campaign(code="gold-bonus", name="Gold welcome", tiers=("gold", "diamond"), bonus_points=100,
                      min_spend_minor=500_00)


@pytest.mark.parametrize(("day", "applies"), [
    (date(2026, 11, 17), False), (date(2026, 11, 18), True), (date(2026, 12, 18), True), (date(2026, 11, 19), False),
])
def test_member_day_recurs_on_its_day_of_every_month(day, applies):
    assert campaign_runs_on(MEMBER_DAY, day) is applies


@pytest.mark.parametrize(("day", "applies"), [
    (date(2026, 10, 31), False), (date(2026, 11, 1), True), (date(2026, 11, 30), True), (date(2026, 12, 1), False),
])
def test_a_campaign_runs_from_its_first_to_its_last_day_inclusive(day, applies):
    assert campaign_runs_on(IMPLANT_DOUBLE, day) is applies


def test_a_weekday_campaign_runs_on_its_weekdays():
    weekend = Campaign(code="w", name="Weekend", weekdays=(6, 7), bonus_points=5)
    assert [campaign_runs_on(weekend, date(2026, 11, d)) for d in (20, 21, 22, 23)] == [False, True, True, False]


def test_member_day_doubles_the_tier_adjusted_spend_points():
    programme = parse_programme({"campaigns": [{"code": "md", "name": "Member day", "days_of_month": [18],
                                                "multiplier": "2"}]})
    lines = quote_visit(programme, visit(paid=100_00, day=date(2026, 11, 18)), MemberFacts(tier="silver"))
    assert points_by_rule(lines) == [("spend", 120), ("visit", 10), ("campaign", 120)]
    assert lines[2].campaign == "md" and lines[2].basis_minor == 100_00


def test_a_category_campaign_multiplies_only_that_category_s_share_of_what_was_paid():
    programme = parse_programme({"campaigns": [{"code": "implants", "name": "Implant month",
                                                "starts_on": "2026-11-01", "ends_on": "2026-11-30",
                                                "categories": ["implant"], "multiplier": 3}]})
    bill = visit(items=[Item("implant", 300_00), Item("cleaning", 100_00)],
                 payments=[Payment("cash", 200_00), Payment("points", 200_00)])
    lines = quote_visit(programme, bill, MemberFacts())
    # paid 200 of 400; implants are 3/4 of the bill: 150 of what was paid; x3 adds 2 x 150
    assert points_by_rule(lines) == [("spend", 200), ("visit", 10), ("campaign", 300)]
    assert quote_visit(programme, visit(items=[Item("cleaning", 100_00)]), MemberFacts())[-1].rule == "visit"


@pytest.mark.parametrize(("tier", "paid", "bonus"), [
    ("gold", 500_00, True), ("diamond", 600_00, True), ("gold", 499_99, False), ("silver", 900_00, False),
])
def test_a_bonus_campaign_filters_by_tier_and_minimum_spend(tier, paid, bonus):
    programme = parse_programme({"campaigns": [{"code": "gold-bonus", "name": "Gold welcome",
                                                "tiers": ["gold", "diamond"], "bonus_points": 100,
                                                "min_spend_minor": 500_00}]})
    lines = quote_visit(programme, visit(paid=paid), MemberFacts(tier=tier))
    assert (("campaign", 100) in points_by_rule(lines)) is bonus
    if bonus:
        assert lines[-1].basis_minor is None  # a fixed bonus goes back only with a full refund


@pytest.mark.parametrize(("filters", "facts", "bill", "applies"), [
    ({"branches": ["HZ01"]}, MemberFacts(), visit(branch="HZ01"), True),
    ({"branches": ["HZ01"]}, MemberFacts(), visit(branch="SH01"), False),
    ({"segments": ["A"]}, MemberFacts(segment="A"), visit(), True),
    ({"segments": ["A"]}, MemberFacts(segment="B"), visit(), False),
    ({"segments": ["A"]}, MemberFacts(segment=None), visit(), False),
    ({"kinds": ["first"]}, MemberFacts(), visit(kind="first"), True),
    ({"kinds": ["first"]}, MemberFacts(), visit(kind="return"), False),
])
def test_campaign_filters_by_branch_segment_and_visit_kind(filters, facts, bill, applies):
    programme = parse_programme({"campaigns": [{"code": "c", "name": "C", "bonus_points": 7, **filters}]})
    assert (("campaign", 7) in points_by_rule(quote_visit(programme, bill, facts))) is applies


def test_two_campaigns_stack_each_with_its_own_line():
    programme = parse_programme({"campaigns": [
        {"code": "a", "name": "A", "multiplier": "1.5"}, {"code": "b", "name": "B", "multiplier": 2, "bonus_points": 5}]})
    assert points_by_rule(quote_visit(programme, visit(paid=100_00), MemberFacts())) == [
        ("spend", 100), ("visit", 10), ("campaign", 50), ("campaign", 100), ("campaign", 5)]


def test_category_shares_add_up_exactly_to_what_was_paid():
    shares = category_shares(100, (Item("a", 1), Item("b", 1), Item("c", 1)))
    assert sum(shares.values()) == 100 and sorted(shares.values()) == [33, 33, 34]
    assert category_shares(0, (Item("a", 5),)) == {"a": 0}
    assert category_shares(10, ()) == {}


@pytest.mark.parametrize(("satisfaction", "points"), [
    ("very_satisfied", 30), ("satisfied", 20), ("neutral", 10), ("dissatisfied", 0), ("very_dissatisfied", 0),
    (None, 0),
])
def test_review_points_by_satisfaction_and_no_deduction_by_default(satisfaction, points):
    assert review_award(P, satisfaction) == points


def test_a_group_may_switch_on_a_deduction_for_very_dissatisfied():
    programme = parse_programme({"review_points": {"very_dissatisfied": -10}})
    assert review_award(programme, "very_dissatisfied") == -10 and review_award(programme, "satisfied") == 20


@pytest.mark.parametrize(("kind", "earned_today", "points"), [
    ("share", 0, 5), ("share", 15, 5), ("share", 16, 4), ("share", 20, 0), ("share", 25, 0), ("check_in", 19, 1),
])
def test_online_interactions_stop_at_the_daily_cap(kind, earned_today, points):
    assert interaction_award(P, kind, earned_today) == points


def test_an_unknown_interaction_is_invalid():
    with pytest.raises(Invalid):
        interaction_award(P, "dance", 0)


@pytest.mark.parametrize(("points", "basis", "refunded", "full", "already", "due"), [
    (1000, 1000_00, 250_00, False, 0, 250),  # a quarter back
    (1000, 1000_00, 250_00, False, 250, 0),  # the same refund seen again takes nothing more
    (1000, 1000_00, 1000_00, False, 250, 750),  # everything refunded: all of it
    (1000, 1000_00, 2000_00, False, 0, 1000),  # more refunded than paid: never more than earned
    (150, 150_50, 50, False, 0, 0),  # 0.50 of 150.50: less than a point
    (150, 150_50, 150_50, False, 0, 150),
    (10, None, 500_00, False, 0, 0),  # a fixed award stays with a partial refund
    (10, None, 0, True, 0, 10),  # and goes with a full one
    (1000, 1000_00, 100_00, True, 100, 900),
    (1000, 1000_00, 0, False, 0, 0),
])
def test_a_refund_takes_back_its_share_cumulatively_never_more_than_earned(points, basis, refunded, full, already,
                                                                            due):
    assert reversal_due(points, basis, refunded, full, already) == due


def test_partial_refunds_in_steps_take_back_what_one_refund_of_the_total_would():
    taken, refunded = 0, 0
    for step in (333, 333, 334):
        refunded += step
        taken += reversal_due(101, 1000, refunded, False, taken)
    assert taken == 101
