"""KPI periods and figures from counts; recalls; satisfaction; who may see health data."""

from datetime import UTC, date, datetime

import pytest

from services.kit.caller import Identity
from services.kit.errors import Forbidden, Invalid
from services.records import access
from services.records.rules import kpis, recalls, satisfaction
from services.records.rules.kpis import Counts, figures, period_bounds, ratio
from services.records.rules.practice import DEFAULT_PRACTICE


@pytest.mark.parametrize(("period", "on", "start", "end"), [
    ("day", date(2026, 11, 23), date(2026, 11, 23), date(2026, 11, 23)),
    ("week", date(2026, 11, 23), date(2026, 11, 23), date(2026, 11, 29)),  # a Monday
    ("week", date(2026, 11, 29), date(2026, 11, 23), date(2026, 11, 29)),  # a Sunday
    ("week", date(2027, 1, 1), date(2026, 12, 28), date(2027, 1, 3)),
    ("month", date(2026, 2, 14), date(2026, 2, 1), date(2026, 2, 28)),
    ("month", date(2028, 2, 29), date(2028, 2, 1), date(2028, 2, 29)),
    ("month", date(2026, 12, 31), date(2026, 12, 1), date(2026, 12, 31)),
    ("year", date(2026, 6, 30), date(2026, 1, 1), date(2026, 12, 31)),
])
def test_period_bounds(period, on, start, end):
    assert period_bounds(period, on) == (start, end)


def test_unknown_period_is_invalid():
    with pytest.raises(Invalid):
        period_bounds("fortnight", date(2026, 1, 1))


@pytest.mark.parametrize(("numerator", "denominator", "scale", "expected"), [
    (13, 16, 10_000, 8125), (2, 3, 10_000, 6667), (1, 3, 10_000, 3333), (1, 8, 100, 13), (-1, 8, 100, -13),
    (-3, 8, 100, -38), (0, 5, 10_000, 0), (5, 0, 10_000, None), (100050, 2, 1, 50025), (1, 2, 1, 1),
])
def test_ratio_rounds_half_away_from_zero(numerator, denominator, scale, expected):
    assert ratio(numerator, denominator, scale) == expected


def test_figures_from_counts():
    counts = Counts(first_arrivals=8, return_arrivals=5, other_arrivals=1, first_converted=6, first_referred=3,
                    completed_visits=10, paying_visits=8, revenue_minor=100001, patients=7, satisfaction_answers=4,
                    satisfaction_points=17, satisfied_answers=3, nps_answers=5, promoters=3, detractors=1,
                    complaints=1, urgent_complaints=2, urgent_answered=1, urgent_response_seconds=1500,
                    urgent_within_target=1)
    result = figures(counts)
    assert result["first_visit_conversion_bp"] == 7500
    assert result["average_ticket_minor"] == 12500  # 100001 / 8 = 12500.125
    assert result["visits_per_patient_x100"] == 143
    assert result["referral_share_bp"] == 3750
    assert result["satisfaction_average_x100"] == 425 and result["satisfied_share_bp"] == 7500
    assert result["nps"] == 40
    assert result["complaint_rate_bp"] == 1000
    assert result["urgent_response_average_seconds"] == 1500 and result["urgent_within_target_bp"] == 5000
    assert result["targets_met"] == {"first_visit_conversion_bp": False, "referral_share_bp": True, "nps": False,
                                     "complaint_rate_bp": False, "urgent_response_average_seconds": True}


def test_nothing_counted_gives_none_not_zero():
    result = figures(Counts())
    assert result["first_visit_conversion_bp"] is None and result["nps"] is None
    assert result["average_ticket_minor"] is None and result["first_visit_arrivals"] == 0
    assert set(result["targets_met"].values()) == {None}


def test_counts_add_up_across_branches():
    total = Counts(first_arrivals=1, revenue_minor=5).plus(Counts(first_arrivals=2, revenue_minor=7))
    assert (total.first_arrivals, total.revenue_minor) == (3, 12)
    assert Counts.of({"first_arrivals": None, "promoters": 4}).promoters == 4
    assert kpis.PERIODS == ("day", "week", "month", "year")


@pytest.mark.parametrize(("day", "months", "expected"), [
    (date(2026, 1, 31), 1, date(2026, 2, 28)), (date(2026, 8, 31), 6, date(2027, 2, 28)),
    (date(2027, 8, 31), 6, date(2028, 2, 29)), (date(2026, 11, 23), 6, date(2027, 5, 23)),
    (date(2026, 12, 15), 12, date(2027, 12, 15)), (date(2026, 3, 10), 60, date(2031, 3, 10)),
])
def test_next_recall_adds_calendar_months(day, months, expected):
    assert recalls.next_recall(day, months) == expected


@pytest.mark.parametrize(("recall_type", "categories", "resets"), [
    ("cleaning", {"cleaning"}, True), ("cleaning", {"exam"}, False), ("ortho_check", {"orthodontics"}, True),
    ("implant_review", {"implant", "exam"}, True), ("perio_maintenance", {"treatment"}, True),
    ("custom", {"cleaning", "exam"}, False),
])
def test_which_visits_reset_a_recall(recall_type, categories, resets):
    assert recalls.resets(recall_type, categories) is resets


def test_complaint_deadlines_and_satisfaction_scale():
    at = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    assert satisfaction.response_due(at, True, DEFAULT_PRACTICE) == datetime(2026, 11, 23, 2, 30, tzinfo=UTC)
    assert satisfaction.response_due(at, False, DEFAULT_PRACTICE) == datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
    assert [satisfaction.score(level) for level in satisfaction.LEVELS] == [1, 2, 3, 4, 5]
    assert [satisfaction.nps_group(n) for n in (0, 6, 7, 8, 9, 10)] == [
        "detractor", "detractor", "passive", "passive", "promoter", "promoter"]
    assert satisfaction.response_seconds(at, datetime(2026, 11, 23, 2, 12, 5, tzinfo=UTC)) == 725


@pytest.mark.parametrize(("role", "kind", "may"), [
    ("clinician", "staff", True), ("integration", "system", True), ("service", "service", True),
    ("front_desk", "staff", False), ("customer_service", "staff", False), ("branch_manager", "staff", False),
    ("group_admin", "staff", False), ("auditor", "staff", False), ("monitoring", "system", False),
])
def test_only_clinical_roles_see_health_data(role, kind, may):
    assert access.may_see_health_data(Identity(kind=kind, subject="x", role=role)) is may


@pytest.mark.parametrize(("reason", "ok"), [("treatment", True), ("  root   canal  ", True), ("ab", False),
                                            (None, False), (42, False), ("x" * 201, False)])
def test_a_reason_is_3_to_200_characters(reason, ok):
    if ok:
        assert access.check_reason(reason) == " ".join(reason.split())
    else:
        with pytest.raises(Invalid):
            access.check_reason(reason)


def test_branches_of_a_caller():
    every = ("SH01", "SH02", "HZ01")
    manager = Identity(kind="staff", subject="m", role="branch_manager", branches=("SH01", "HZ01"))
    assert access.branches_of(manager, None, every) == ("SH01", "HZ01")
    assert access.branches_of(manager, "HZ01", every) == ("HZ01",)
    with pytest.raises(Forbidden):
        access.branches_of(manager, "SH02", every)
    admin = Identity(kind="staff", subject="a", role="group_admin", branches=("*",))
    assert access.branches_of(admin, None, every) == every
