"""Benefit years, quota balances and discounted prices (rounding at its boundary)."""

from dataclasses import replace
from datetime import date

import pytest

from services.members.rules.benefits import BenefitYear, benefit_year, discount_minor, price, quota_lines
from services.members.rules.programme import DEFAULT_PROGRAMME

P = DEFAULT_PROGRAMME


@pytest.mark.parametrize(("amount", "rate", "discount"), [
    (999, 500, 50),  # 49.95 -> 50
    (990, 500, 50),  # 49.5 -> 50: half up
    (989, 500, 49),  # 49.45 -> 49
    (1, 5_000, 1),  # 0.5 -> 1
    (1, 4_999, 0),
    (0, 1_500, 0),
    (123_456, 10_000, 123_456),
    (123_456, 0, 0),
])
def test_discount_is_rounded_half_up_to_a_minor_unit(amount, rate, discount):
    assert discount_minor(amount, rate) == discount


def test_price_applies_the_tier_rate_of_each_category():
    bill = price(P, "gold", [{"category": "cleaning", "code": "C1", "amount_minor": 30_000},
                             {"category": "implant", "code": "I1", "amount_minor": 800_000}], birthday_month=False)
    cleaning, implant = bill["lines"]
    assert (cleaning["discount_bp"], cleaning["discount_minor"], cleaning["net_minor"], cleaning["basis"]) == \
        (1_000, 3_000, 27_000, "tier")
    assert (implant["discount_bp"], implant["discount_minor"], implant["basis"]) == (0, 0, None)
    assert (bill["amount_minor"], bill["discount_minor"], bill["net_minor"]) == (830_000, 3_000, 827_000)


def test_birthday_month_rate_replaces_a_smaller_tier_rate_never_adds_to_it():
    bill = price(P, "gold", [{"category": "cleaning", "amount_minor": 10_000},
                             {"category": "implant", "amount_minor": 10_000}], birthday_month=True)
    assert [(line["discount_bp"], line["basis"]) for line in bill["lines"]] == \
        [(1_000, "tier"), (1_000, "birthday_month")]


def test_a_member_not_entitled_pays_full_price():
    bill = price(P, "diamond", [{"category": "cleaning", "amount_minor": 10_000}], birthday_month=True,
                 entitled=False)
    assert bill["discount_minor"] == 0 and bill["lines"][0]["basis"] is None


@pytest.mark.parametrize(("enrolled", "on", "year"), [
    (date(2025, 6, 10), date(2026, 6, 9), BenefitYear(2025, date(2025, 6, 10), date(2026, 6, 9))),
    (date(2025, 6, 10), date(2026, 6, 10), BenefitYear(2026, date(2026, 6, 10), date(2027, 6, 9))),
    (date(2024, 2, 29), date(2025, 3, 1), BenefitYear(2025, date(2025, 2, 28), date(2026, 2, 27))),
])
def test_the_benefit_year_runs_from_the_enrolment_anniversary(enrolled, on, year):
    assert benefit_year(P, enrolled, on) == year


def test_a_calendar_benefit_year_runs_from_january():
    calendar = replace(P, benefit_year="calendar")
    assert benefit_year(calendar, date(2025, 6, 10), date(2026, 6, 9)) == \
        BenefitYear(2026, date(2026, 1, 1), date(2026, 12, 31))


def test_quota_lines_never_go_below_zero_and_keep_used_benefits_no_longer_granted():
    year = BenefitYear(2026, date(2026, 1, 1), date(2026, 12, 31))
    assert quota_lines({"free_cleaning": 1, "full_oral_exam": 1}, {"free_cleaning": 1, "custom_care_package": 1},
                       year) == [
        {"benefit": "custom_care_package", "allowed": 0, "used": 1, "remaining": 0, "benefit_year": 2026},
        {"benefit": "free_cleaning", "allowed": 1, "used": 1, "remaining": 0, "benefit_year": 2026},
        {"benefit": "full_oral_exam", "allowed": 1, "used": 0, "remaining": 1, "benefit_year": 2026},
    ]
    assert quota_lines({}, {}, year) == []
