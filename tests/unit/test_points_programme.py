"""The points programme: SPEC defaults, and a group's overrides read exactly or refused clearly."""

from datetime import date

import pytest

from services.kit.errors import Invalid
from services.points.rules.programme import DEFAULT_PROGRAMME, parse_programme


def test_the_shipped_defaults_are_the_spec_s():
    p = DEFAULT_PROGRAMME
    assert (p.spend_points_per_unit, p.currency_minor_per_unit) == (1, 100)
    assert p.tier_multipliers_bp == {"standard": 10_000, "silver": 12_000, "gold": 15_000, "diamond": 20_000}
    assert (p.visit_points, p.activity_points) == (10, 50)
    assert (p.referral_enrolment_points, p.referral_first_paid_visit_points) == (200, 300)
    assert p.review_points == {"very_satisfied": 30, "satisfied": 20, "neutral": 10, "dissatisfied": 0,
                               "very_dissatisfied": 0}
    assert (p.cash_points_per_unit, p.cash_max_share_bp) == (100, 5_000)
    assert (p.lot_expiry_years_after, p.expiry_warning_days) == (1, 30)
    assert set(p.spend_excluded_methods) == {"points", "coupon", "stored_value_bonus"}
    assert p.campaigns == ()


def test_overrides_change_only_what_they_name():
    p = parse_programme({"visit_points": 20, "tier_multipliers": {"gold": "1.75", "diamond": 3}})
    assert p.visit_points == 20 and p.activity_points == 50
    assert p.tier_multipliers_bp == {"gold": 17_500, "diamond": 30_000}
    assert parse_programme({}) is DEFAULT_PROGRAMME


def test_a_campaign_is_read_with_its_dates_and_filters():
    p = parse_programme({"campaigns": [{"code": "md", "name": "Member day", "days_of_month": [18],
                                        "multiplier": 2, "tiers": ["gold"], "starts_on": "2026-01-01"}]})
    campaign = p.campaigns[0]
    assert (campaign.multiplier_bp, campaign.days_of_month, campaign.tiers) == (20_000, (18,), ("gold",))
    assert campaign.starts_on == date(2026, 1, 1)


@pytest.mark.parametrize(("raw", "where"), [
    ({"visit_points": 2.5}, "visit_points"),
    ({"visit_points": -1}, "visit_points"),
    ({"visit_points": True}, "visit_points"),
    ({"spend_points_per_day": 1}, "spend_points_per_day"),
    ({"tier_multipliers": {"gold": "1.23456"}}, "tier_multipliers.gold"),
    ({"tier_multipliers": {"gold": "0.5"}}, "tier_multipliers.gold"),
    ({"review_points": {"ecstatic": 100}}, "review_points"),
    ({"interaction_points": {"share": -1}}, "interaction_points.share"),
    ({"cash_max_share_bp": 10_001}, "cash_max_share_bp"),
    ({"currency_minor_per_unit": 0}, "currency_minor_per_unit"),
    ({"spend_excluded_methods": ["cheque"]}, "spend_excluded_methods"),
    ({"wallet_spend_order": "random"}, "wallet_spend_order"),
    ({"top_up_offers": [{"min_minor": 100}]}, "top_up_offers[0]"),
    ({"campaigns": [{"code": "x", "name": "X"}]}, "campaigns[0]"),
    ({"campaigns": [{"code": "x", "name": "X", "bonus_points": 1, "colour": "red"}]}, "campaigns[0]"),
    ({"campaigns": [{"code": "x", "name": "X", "bonus_points": 1, "days_of_month": [32]}]},
     "campaigns[0].days_of_month"),
    ({"campaigns": [{"code": "x", "name": "X", "bonus_points": 1, "starts_on": "2026-02-01",
                     "ends_on": "2026-01-01"}]}, "campaigns[0].ends_on"),
    ({"campaigns": [{"code": "x", "name": "X", "bonus_points": 1}, {"code": "x", "name": "Y", "bonus_points": 1}]},
     "campaigns"),
])
def test_a_setting_that_cannot_be_read_exactly_is_refused_by_name(raw, where):
    with pytest.raises(Invalid) as raised:
        parse_programme(raw)
    assert where in raised.value.fields


def test_the_programme_reads_back_as_plain_json():
    p = parse_programme({"campaigns": [{"code": "md", "name": "Member day", "days_of_month": [18], "multiplier": 2,
                                        "starts_on": "2026-01-01"}]})
    plain = p.as_dict()
    assert plain["campaigns"][0]["starts_on"] == "2026-01-01" and plain["visit_points"] == 10


def test_pending_points_tier_prices_and_family_transfers_are_off_unless_configured():
    p = DEFAULT_PROGRAMME
    assert (p.pending_days, p.tier_upgrade_prices, p.family_points_transfer, p.family_wallet_transfer) == (
        0, {}, False, False)
    assert p.pending_for("spend") == 0


@pytest.mark.parametrize("raw, rule, days", [
    ({"pending_days": 14}, "spend", 14),
    ({"pending_days": 14}, "referral", 14),  # no rule named: every rule a visit pays
    ({"pending_days": 7, "pending_rules": ["spend", "campaign"]}, "campaign", 7),
    ({"pending_days": 7, "pending_rules": ["spend"]}, "visit", 0),
    ({"pending_days": 0, "pending_rules": ["spend"]}, "spend", 0),
])
def test_a_rule_s_points_are_locked_for_the_days_the_programme_says(raw, rule, days):
    assert parse_programme(raw).pending_for(rule) == days


@pytest.mark.parametrize("raw, where", [
    ({"pending_days": -1}, "pending_days"),
    ({"pending_rules": ["review"]}, "pending_rules"),
    ({"tier_upgrade_prices": {"gold": 0}}, "tier_upgrade_prices.gold"),
    ({"tier_upgrade_prices": {"gold": 1.5}}, "tier_upgrade_prices.gold"),
    ({"family_points_transfer": "yes"}, "family_points_transfer"),
])
def test_pending_prices_and_transfer_settings_are_refused_by_name_when_unreadable(raw, where):
    with pytest.raises(Invalid) as refused:
        parse_programme(raw)
    assert where in refused.value.fields


def test_tier_prices_and_transfer_switches_are_read():
    p = parse_programme({"tier_upgrade_prices": {"silver": 3000, "gold": 12000}, "family_points_transfer": True})
    assert p.tier_upgrade_prices == {"silver": 3000, "gold": 12000}
    assert (p.family_points_transfer, p.family_wallet_transfer) == (True, False)


@pytest.mark.parametrize(("terms", "today", "ended_early", "state"), [
    ({}, date(2026, 12, 6), False, "active"),
    ({"starts_on": "2026-12-07"}, date(2026, 12, 6), False, "scheduled"),
    ({"starts_on": "2026-12-06", "ends_on": "2026-12-06"}, date(2026, 12, 6), False, "active"),
    ({"ends_on": "2026-12-05"}, date(2026, 12, 6), False, "ended"),
    ({"starts_on": "2027-01-01"}, date(2026, 12, 6), True, "ended"),
])
def test_a_campaign_s_state_comes_from_its_dates_unless_ended_by_hand(terms, today, ended_early, state):
    from services.points.rules.programme import campaign_state, parse_campaign

    campaign = parse_campaign({"code": "c", "name": "C", "bonus_points": 5, **terms})
    assert campaign_state(campaign, ended_early, today) == state


def test_a_campaign_from_the_api_is_checked_by_the_file_s_rule_with_fields_named_as_sent():
    from services.points.rules.programme import parse_campaign, plain

    with pytest.raises(Invalid) as raised:
        parse_campaign({"code": "c", "name": "C", "multiplier": "1.00001"})
    assert list(raised.value.fields) == ["multiplier"]
    with pytest.raises(Invalid) as raised:
        parse_programme({"campaigns": [{"code": "c", "name": "C", "multiplier": "1.00001"}]})
    assert list(raised.value.fields) == ["campaigns[0].multiplier"]
    with pytest.raises(Invalid):
        parse_campaign({"code": "c", "name": "C", "multiplier": "101"})  # at most 100x
    campaign = parse_campaign({"code": "c", "name": "C", "multiplier": "1.5", "starts_on": "2026-12-01"})
    assert parse_campaign(plain(campaign)) == campaign  # the stored form reads back unchanged
