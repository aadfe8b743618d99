"""The programme: each tier inherits the benefits of the tiers below; the ladder, thresholds and rules are
configuration (the shipped file, or a stored version), checked before use."""

import copy
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from services.kit.errors import Invalid
from services.members.programme_versions import parse
from services.members.rules.programme import (
    DEFAULT_PROGRAMME,
    SegmentRules,
    problems,
    programme_document,
    programme_from_document,
)


def test_ladder_order_and_start():
    assert [tier.code for tier in DEFAULT_PROGRAMME.tiers] == ["standard", "silver", "gold", "diamond"]
    assert DEFAULT_PROGRAMME.rank("gold") == 2


def test_standard_has_the_base_horizon_and_nothing_else():
    benefits = DEFAULT_PROGRAMME.benefits_of("standard")
    assert benefits["booking_horizon_days"] == 3
    assert benefits["quotas"] == {} and set(benefits["discounts"].values()) == {0}
    assert benefits["priority_booking"] is False


def test_quotas_accumulate_and_horizon_grows_from_gold():
    assert DEFAULT_PROGRAMME.benefits_of("silver")["quotas"] == {"free_cleaning": 1}
    gold = DEFAULT_PROGRAMME.benefits_of("gold")
    assert gold["quotas"] == {"free_cleaning": 1, "full_oral_exam": 1}
    assert gold["booking_horizon_days"] == 7 and gold["priority_booking"] is True
    diamond = DEFAULT_PROGRAMME.benefits_of("diamond")
    assert diamond["quotas"] == {"free_cleaning": 1, "full_oral_exam": 1, "premium_treatment_discount": 1,
                                 "custom_care_package": 1}
    assert diamond["booking_horizon_days"] == 7 and diamond["dedicated_advisor"] is True
    assert diamond["event_invitations"] is True  # inherited from silver


def test_discounts_never_shrink_up_the_ladder():
    previous = DEFAULT_PROGRAMME.benefits_of("standard")["discounts"]
    for tier in ("silver", "gold", "diamond"):
        current = DEFAULT_PROGRAMME.benefits_of(tier)["discounts"]
        assert all(current[category] >= previous[category] for category in previous)
        previous = current


# --- the programme as configuration -------------------------------------------------------------------

SHIPPED_FILE = Path(__file__).resolve().parents[2] / "config" / "programme.yml"


def test_the_shipped_file_is_the_shipped_defaults():
    with open(SHIPPED_FILE, encoding="utf-8") as handle:
        assert parse(yaml.safe_load(handle), "CNY") == DEFAULT_PROGRAMME


def test_the_document_round_trips():
    assert programme_from_document(programme_document(DEFAULT_PROGRAMME)) == DEFAULT_PROGRAMME
    assert problems(DEFAULT_PROGRAMME) == {}


def _document(change):
    document = copy.deepcopy(programme_document(DEFAULT_PROGRAMME))
    change(document)
    return document


@pytest.mark.parametrize(("change", "field"), [
    (lambda d: d["tiers"][2]["thresholds"].update(spend_minor=500_000), "tiers.2.thresholds"),  # not above silver
    (lambda d: d["tiers"][0]["thresholds"].update(visits_12m=1), "tiers.0.thresholds"),
    (lambda d: d["tiers"][1].update(thresholds={}), "tiers.1.thresholds"),
    (lambda d: d["tiers"][1]["benefits"]["discounts_bp"].update(massage=500), "tiers.1.benefits.discounts_bp"),
    (lambda d: d["tiers"][1]["benefits"]["discounts_bp"].update(exam=10_001), "tiers.1.benefits.discounts_bp"),
    (lambda d: d["tiers"][3].update(code="gold"), "tiers"),
    (lambda d: d["tiers"][1].update(code="Silver Card"), "tiers.1.code"),
    (lambda d: d["review"].update(notice_days=-1), "review.notice_days"),
    (lambda d: d["segments"].update(a_top_share_bp=6_000, b_next_share_bp=5_000), "segments"),
    (lambda d: d.update(currency="USD"), "currency"),
    (lambda d: d["tiers"][1]["thresholds"].update(spend_minor=5000.5), "tiers"),  # money is never a float
    (lambda d: d.update(tiers=[]), "tiers"),
])
def test_an_unusable_programme_is_refused_with_the_field(change, field):
    with pytest.raises(Invalid) as raised:
        parse(_document(change), "CNY")
    assert field in raised.value.fields, raised.value.fields


def test_the_ladder_names_count_and_rules_are_configuration():
    document = _document(lambda d: d.update(tiers=d["tiers"][:2], benefit_year="calendar"))
    document["tiers"][1]["names"] = {"en": "Member plus"}
    document["segments"]["churn_factor_pct"] = 200
    programme = parse(document, "CNY")
    assert programme.codes == ("standard", "silver") and programme.benefit_year == "calendar"
    assert programme.segments == replace(SegmentRules(), churn_factor_pct=200)
