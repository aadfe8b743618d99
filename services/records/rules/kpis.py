"""Visit KPIs: the periods they cover and how each figure follows from counts. No I/O.

The database does the counting (``figures.py``: SQL aggregates grouped by branch); this module turns
counts into figures. Definitions, for one branch (or the group) and one period of local days:

| figure | definition |
| --- | --- |
| first-visit / return-visit arrivals | visits of kind first / return whose patient arrived on a day of the period |
| first-visit conversion rate | first-visit arrivals whose visit completed with treatment (not "none") ÷ first-visit arrivals |
| average ticket (客单价) | (paid − refunded) of visits completed in the period ÷ completed visits with a payment |
| repeat frequency | visits completed in the period ÷ distinct patients who completed them |
| referral share of first visits | first-visit arrivals with a referral source ÷ first-visit arrivals |
| satisfaction | mean score of survey answers (1 very dissatisfied … 5 very satisfied); share satisfied or better |
| NPS | % promoters (9–10) − % detractors (0–6) of the NPS answers |
| complaint rate | complaints received ÷ visits completed in the period |
| urgent response time | mean seconds from an urgent complaint to its first answer; share answered within target |

Figures are integers: rates in basis points (8125 = 81.25 %), money in minor units, means × 100
where a fraction matters; ``None`` where the denominator is zero. Rounding is half away from zero.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import date, timedelta
from fractions import Fraction
from typing import Any

from services.kit.errors import Invalid

PERIODS = ("day", "week", "month", "year")
TARGETS = {
    "first_visit_conversion_bp": ("min", 8000),
    "referral_share_bp": ("min", 3000),
    "nps": ("min", 60),
    "complaint_rate_bp": ("max", 300),
    "urgent_response_average_seconds": ("max", 1800),
}
"""SPEC's targets: conversion ≥ 80 %, referral share ≥ 30 %, NPS ≥ 60, complaints ≤ 3 %, urgent ≤ 30 min."""


def period_bounds(period: str, on: date) -> tuple[date, date]:
    """First and last local day of the day / ISO week (Monday first) / month / year containing ``on``."""
    if period == "day":
        return on, on
    if period == "week":
        start = on - timedelta(days=on.weekday())
        return start, start + timedelta(days=6)
    if period == "month":
        start = on.replace(day=1)
        following = (start + timedelta(days=32)).replace(day=1)
        return start, following - timedelta(days=1)
    if period == "year":
        return on.replace(month=1, day=1), on.replace(month=12, day=31)
    raise Invalid(f"period must be one of {', '.join(PERIODS)}.", {"period": [f"One of {', '.join(PERIODS)}."]})


def ratio(numerator: int, denominator: int, scale: int = 10_000) -> int | None:
    """``numerator / denominator × scale`` as an integer, half away from zero; None over zero."""
    if not denominator:
        return None
    value = Fraction(numerator * scale, denominator)
    magnitude = abs(value)
    rounded = int(magnitude) + (1 if magnitude - int(magnitude) >= Fraction(1, 2) else 0)
    return rounded if value >= 0 else -rounded


@dataclass
class Counts:
    """What the database counted for one branch (or the group) in one period."""

    first_arrivals: int = 0
    return_arrivals: int = 0
    other_arrivals: int = 0
    first_converted: int = 0
    first_referred: int = 0
    completed_visits: int = 0
    paying_visits: int = 0
    revenue_minor: int = 0
    patients: int = 0  # distinct: not additive across branches (the group's is counted apart)
    satisfaction_answers: int = 0
    satisfaction_points: int = 0
    satisfied_answers: int = 0
    nps_answers: int = 0
    promoters: int = 0
    detractors: int = 0
    complaints: int = 0
    urgent_complaints: int = 0
    urgent_answered: int = 0
    urgent_response_seconds: int = 0
    urgent_within_target: int = 0

    @classmethod
    def of(cls, values: dict[str, Any]) -> Counts:
        return cls(**{f.name: int(values.get(f.name) or 0) for f in fields(cls)})

    def plus(self, other: Counts) -> Counts:
        return Counts(**{name: value + getattr(other, name) for name, value in asdict(self).items()})


def figures(counts: Counts, urgent_target_seconds: int = 1800) -> dict[str, Any]:
    """The KPI figures of ``counts`` (see the module's table), with SPEC's targets checked."""
    c = counts
    result: dict[str, Any] = {
        "first_visit_arrivals": c.first_arrivals,
        "return_visit_arrivals": c.return_arrivals,
        "other_arrivals": c.other_arrivals,
        "first_visits_converted": c.first_converted,
        "first_visit_conversion_bp": ratio(c.first_converted, c.first_arrivals),
        "completed_visits": c.completed_visits,
        "paying_visits": c.paying_visits,
        "revenue_minor": c.revenue_minor,
        "average_ticket_minor": ratio(c.revenue_minor, c.paying_visits, 1),
        "patients": c.patients,
        "visits_per_patient_x100": ratio(c.completed_visits, c.patients, 100),
        "referred_first_visits": c.first_referred,
        "referral_share_bp": ratio(c.first_referred, c.first_arrivals),
        "satisfaction_answers": c.satisfaction_answers,
        "satisfaction_average_x100": ratio(c.satisfaction_points, c.satisfaction_answers, 100),
        "satisfied_share_bp": ratio(c.satisfied_answers, c.satisfaction_answers),
        "nps_answers": c.nps_answers,
        "promoters": c.promoters,
        "detractors": c.detractors,
        "nps": ratio(c.promoters - c.detractors, c.nps_answers, 100),
        "complaints": c.complaints,
        "complaint_rate_bp": ratio(c.complaints, c.completed_visits),
        "urgent_complaints": c.urgent_complaints,
        "urgent_answered": c.urgent_answered,
        "urgent_response_average_seconds": ratio(c.urgent_response_seconds, c.urgent_answered, 1),
        "urgent_within_target": c.urgent_within_target,
        "urgent_within_target_bp": ratio(c.urgent_within_target, c.urgent_complaints),
    }
    targets = dict(TARGETS, urgent_response_average_seconds=("max", urgent_target_seconds))
    result["targets_met"] = {name: None if result[name] is None else
                             (result[name] >= goal if kind == "min" else result[name] <= goal)
                             for name, (kind, goal) in targets.items()}
    return result
