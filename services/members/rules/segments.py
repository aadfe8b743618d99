"""Segments for care work (A core, B potential, C basic), RFM scores and churn risk. No I/O.

The nightly job first measures the whole active membership once (``Bounds``: where the top revenue
shares start and the RFM quintile cut points), then grades members batch by batch against it:

- **A**: 12-month revenue above the top ``a_top_share`` cut (20 % by default), or at least
  ``a_min_visits_12m`` visits (2 a month: long-term chronic or orthodontic care);
- **B**: revenue above the cut of the next ``b_next_share`` (30 %), or at least ``b_min_visits_12m``
  visits (a visit a quarter);
- **C**: everyone else (single or first-time visitors, free-clinic attendees, no visit at all).

RFM: each of recency (the last visit's day), frequency (visits in 12 months) and monetary (revenue in 12
months) scores 1-5 by the quintile cut points of the members who have a value; no value scores 1.
Churn risk: the time since the last visit exceeds ``churn_factor_pct`` of the member's usual interval
(the mean gap between their visits; ``default_interval_days`` for a member with one visit). A member
who never came is not "churning" (that is a different follow-up).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from services.members.rules.programme import MAX_BP, SegmentRules

QUINTILES_BP = (2_000, 4_000, 6_000, 8_000)


@dataclass(frozen=True)
class Bounds:
    """The membership measured once per night. Cut points are values *at* a rank: a member is above a cut
    when strictly greater than it. None: nobody has a value."""

    revenue_a: int | None = None
    revenue_b: int | None = None
    recency: tuple[date, ...] = ()  # last-visit days at 20/40/60/80 %, oldest first
    frequency: tuple[int, ...] = ()
    monetary: tuple[int, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"revenue_a": self.revenue_a, "revenue_b": self.revenue_b,
                "recency": [day.isoformat() for day in self.recency], "frequency": list(self.frequency),
                "monetary": list(self.monetary)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Bounds:
        return cls(revenue_a=data["revenue_a"], revenue_b=data["revenue_b"],
                   recency=tuple(date.fromisoformat(day) for day in data["recency"]),
                   frequency=tuple(data["frequency"]), monetary=tuple(data["monetary"]))


@dataclass(frozen=True)
class Facts:
    """What grading needs to know of one member (12 months ending on the day judged, and all time)."""

    spend_12m_minor: int = 0
    visits_12m: int = 0
    visits_total: int = 0
    first_visit_on: date | None = None
    last_visit_on: date | None = None


@dataclass(frozen=True)
class Grade:
    segment: str
    r: int
    f: int
    m: int
    churn_risk: bool
    usual_interval_days: int | None

    @property
    def rfm(self) -> dict[str, int]:
        return {"r": self.r, "f": self.f, "m": self.m}


def rank_for_share(count: int, share_bp: int) -> int:
    """The 1-based rank (ascending) of the cut below the top ``share_bp`` of ``count`` values, 0 for none.

    The same rule as SQL's ``percentile_disc``: the value at rank ceil(p * n), p = 1 - share, in integers.
    """
    return (count * (MAX_BP - share_bp) + MAX_BP - 1) // MAX_BP if count else 0


def quintile_ranks(count: int) -> tuple[int, ...]:
    """The ranks of the 20/40/60/80 % cut points among ``count`` ascending values."""
    return tuple((count * bp + MAX_BP - 1) // MAX_BP for bp in QUINTILES_BP) if count else ()


def score(value: Any, cuts: tuple[Any, ...]) -> int:
    """1-5: one more for each cut point ``value`` is strictly above; 1 without a value or cut points."""
    if value is None or not cuts:
        return 1
    return 1 + sum(1 for cut in cuts if value > cut)


def usual_interval_days(facts: Facts) -> int | None:
    """The mean gap between the member's visits, in whole days; None with fewer than two visits."""
    if facts.visits_total < 2 or facts.first_visit_on is None or facts.last_visit_on is None:
        return None
    return max((facts.last_visit_on - facts.first_visit_on).days // (facts.visits_total - 1), 1)


def churn_risk(rules: SegmentRules, facts: Facts, today: date) -> bool:
    if facts.last_visit_on is None:
        return False
    interval = usual_interval_days(facts) or rules.default_interval_days
    # days * 100 > interval * pct keeps it in integers: 1.5x is "more than 150 % of the interval"
    return (today - facts.last_visit_on).days * 100 > interval * rules.churn_factor_pct


def segment_of(rules: SegmentRules, bounds: Bounds, facts: Facts) -> str:
    spend = facts.spend_12m_minor
    if (spend > 0 and bounds.revenue_a is not None and spend > bounds.revenue_a) \
            or facts.visits_12m >= rules.a_min_visits_12m:
        return "A"
    if (spend > 0 and bounds.revenue_b is not None and spend > bounds.revenue_b) \
            or facts.visits_12m >= rules.b_min_visits_12m:
        return "B"
    return "C"


def grade(rules: SegmentRules, bounds: Bounds, facts: Facts, today: date) -> Grade:
    """The member's segment, RFM scores and churn risk on ``today``."""
    return Grade(
        segment=segment_of(rules, bounds, facts),
        r=score(facts.last_visit_on, bounds.recency),
        f=score(facts.visits_12m if facts.visits_12m > 0 else None, bounds.frequency),
        m=score(facts.spend_12m_minor if facts.spend_12m_minor > 0 else None, bounds.monetary),
        churn_risk=churn_risk(rules, facts, today),
        usual_interval_days=usual_interval_days(facts),
    )
