"""Tier rules: which tier a member's activity earns, when a tier rises, how the yearly review lowers
it. No I/O: every function takes the programme, the activity and the day it is judged on.

- **The window**: every qualifying path counts the last 12 months, the 12 months that end on the day
  judged (``window(as_of)``: from the same day a year before, exclusive, to ``as_of``, inclusive).
- **Upgrades** are immediate: after each event the member's activity is evaluated as of today and a
  higher tier is given at once (several steps if earned). Points earned are judged on the points path
  alone (``points_may_upgrade``): every other path was judged when its own activity arrived. Nothing but
  a review ever lowers a tier, so a refund mid-year never demotes.
- **The review** comes once a year (the enrolment anniversary by default) and judges the 12 months that
  ended the day before. A member who no longer qualifies gets a notice (``notice_days``) announcing a
  tier at most ``max_steps_down`` lower; on the day the notice ends the 12 months ending the day before
  are judged again: a member who requalified keeps the tier, any other drops to the better of the
  announced tier and the one the activity earns.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta

from services.members.events import PATHS
from services.members.rules.programme import Programme, Thresholds

WINDOW_MONTHS = 12


@dataclass(frozen=True)
class Activity:
    """A member's activity in a window: what the qualifying paths measure."""

    spend_minor: int = 0  # what the member actually paid, refunds taken back out
    largest_top_up_minor: int = 0  # the largest single top-up (the bonus never counts)
    points: int = 0  # points earned (reversals taken back out), never the balance
    visits: int = 0  # completed visits of the kinds the programme counts, fully refunded ones excluded

    def by_path(self) -> dict[str, int]:
        return {"spend": self.spend_minor, "top_up": self.largest_top_up_minor, "points": self.points,
                "visits": self.visits}


@dataclass(frozen=True)
class Qualification:
    """The highest tier the activity earns and the paths that earned it (first one is the reason)."""

    tier: str
    paths: tuple[str, ...] = ()

    @property
    def path(self) -> str | None:
        return self.paths[0] if self.paths else None


@dataclass(frozen=True)
class Change:
    from_tier: str
    to_tier: str
    direction: str  # "up" or "down"
    reason: str  # one of events.TIER_REASONS


@dataclass(frozen=True)
class ReviewDecision:
    """What a review does: ``keep``, ``raise`` (found qualifying higher), ``notice`` or ``lower`` (no notice)."""

    action: str
    target: str
    reason: str = "review"


def qualifying_paths(thresholds: Thresholds, activity: Activity) -> tuple[str, ...]:
    """The paths of a tier that ``activity`` meets: exactly at the threshold qualifies."""
    needed = thresholds.by_path()
    have = activity.by_path()
    return tuple(path for path in PATHS if needed[path] is not None and have[path] >= needed[path])


def evaluate(programme: Programme, activity: Activity) -> Qualification:
    """The highest tier ``activity`` earns, and by which paths."""
    for tier in reversed(programme.tiers[1:]):
        paths = qualifying_paths(tier.thresholds, activity)
        if paths:
            return Qualification(tier.code, paths)
    return Qualification(programme.entry_tier)


def upgrade(programme: Programme, current: str, qualification: Qualification) -> Change | None:
    """The upgrade ``qualification`` earns over ``current``, if any (never a downgrade)."""
    if programme.rank(qualification.tier) > programme.rank_or_top(current):
        return Change(current, qualification.tier, "up", qualification.path or "manual")
    return None


def points_may_upgrade(programme: Programme, current: str, points: int) -> bool:
    """Whether ``points`` earned in the window reach the points threshold of a tier above ``current``: when they
    do not, new points change nothing (every other path was judged when its own activity arrived)."""
    above = programme.tiers[programme.rank_or_top(current) + 1:]
    return any(tier.thresholds.points_12m is not None and points >= tier.thresholds.points_12m for tier in above)


def review(programme: Programme, current: str, qualification: Qualification) -> ReviewDecision:
    """The yearly review of a member holding ``current`` whose last 12 months earn ``qualification``."""
    held, earned = programme.rank_or_top(current), programme.rank(qualification.tier)
    if earned > held:
        return ReviewDecision("raise", qualification.tier, qualification.path or "review")
    if earned == held:
        return ReviewDecision("keep", current)
    target = programme.tiers[max(earned, held - programme.review.max_steps_down)].code
    return ReviewDecision("notice" if programme.review.notice_days > 0 else "lower", target)


def end_of_notice(programme: Programme, current: str, announced: str, qualification: Qualification) -> Change | None:
    """At the end of a notice: the drop to carry out, or None when the member requalified meanwhile."""
    held, earned = programme.rank_or_top(current), programme.rank(qualification.tier)
    try:
        floor = programme.rank(announced)
    except KeyError:  # the programme dropped the announced tier since: fall no lower than earned
        floor = earned
    if earned >= held or floor >= held:
        return None
    return Change(current, programme.tiers[max(earned, floor)].code, "down", "review")


def missing_for(programme: Programme, current: str, activity: Activity) -> dict[str, object] | None:
    """What the member still needs for the next tier, path by path (None at the top of the ladder)."""
    rank = programme.rank_or_top(current)
    if rank + 1 >= len(programme.tiers):
        return None
    nxt = programme.tiers[rank + 1]
    have = activity.by_path()
    needs = {path: max(threshold - have[path], 0) for path, threshold in nxt.thresholds.by_path().items()
             if threshold is not None}
    return {"tier": nxt.code, "needs": needs}


# --- days ---------------------------------------------------------------------------------------------

def add_months(day: date, months: int) -> date:
    """``day`` moved by whole months, clamped to the month's end (31 March - 1 month = 28/29 February)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def window(as_of: date, months: int = WINDOW_MONTHS) -> tuple[date, date]:
    """The first and last local day of the ``months`` that end on ``as_of`` (both inclusive)."""
    return add_months(as_of, -months) + timedelta(days=1), as_of


def anniversary(anchor: date, year: int) -> date:
    """``anchor``'s anniversary in ``year`` (29 February falls on 28 February in other years)."""
    return date(year, anchor.month, min(anchor.day, calendar.monthrange(year, anchor.month)[1]))


def next_anniversary(anchor: date, after: date) -> date:
    """The first anniversary of ``anchor`` strictly after ``after``."""
    candidate = anniversary(anchor, after.year)
    return candidate if candidate > after else anniversary(anchor, after.year + 1)


def last_anniversary(anchor: date, on: date) -> date:
    """The latest anniversary of ``anchor`` on or before ``on`` (``anchor`` itself at most)."""
    candidate = anniversary(anchor, on.year)
    if candidate > on:
        candidate = anniversary(anchor, on.year - 1)
    return max(candidate, anchor) if anchor <= on else anchor


def next_review_on(programme: Programme, enrolled_on: date, tier_since_on: date, after: date) -> date:
    """When the member's next yearly review comes, the first one after ``after``."""
    anchor = tier_since_on if programme.review.basis == "tier_anniversary" else enrolled_on
    return next_anniversary(anchor, after)
