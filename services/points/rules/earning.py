"""What a visit, a referral, a review or an online interaction earns, rule by rule. No I/O here.

The engine reads the programme it is given (``programme.Programme``) and the facts of one visit, and
returns ``Line``s: one per rule that pays, with the points and a description the desk can read out.
All arithmetic is on integers; every division rounds down (a member is never promised a point the
ledger would not post).

Spend counts only what the member actually paid: payments by points, coupons and bonus stored value
are left out (``Programme.spend_excluded_methods``). The tier multiplier applies to spend; a campaign
multiplier applies on top of the tier, to the spend of the categories it names; each campaign that
matches adds its own line (campaigns stack additively).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from services.kit.errors import Invalid
from services.points.rules.programme import ONE_X, Campaign, Programme


@dataclass(frozen=True)
class Item:
    category: str
    amount_minor: int
    code: str = ""


@dataclass(frozen=True)
class Payment:
    method: str
    amount_minor: int


@dataclass(frozen=True)
class Visit:
    """The facts of a completed visit that earning depends on (``day``: the group's local date)."""

    branch: str
    kind: str
    day: date
    items: tuple[Item, ...] = ()
    payments: tuple[Payment, ...] = ()
    qualifying_minor: int | None = None  # used only when no payments are given
    first_paid_visit: bool = False


@dataclass(frozen=True)
class MemberFacts:
    tier: str = "standard"
    segment: str | None = None
    has_referrer: bool = False


@dataclass(frozen=True)
class Line:
    """One rule's award. ``basis_minor``: the spend it is proportional to (a partial refund takes back
    its share); None: a fixed award, taken back only when the whole visit is refunded."""

    rule: str  # spend, visit, activity, campaign, referral (the points_earned "rule")
    points: int
    description: str
    to_referrer: bool = False
    basis_minor: int | None = None
    campaign: str | None = None
    multiplier_bp: int | None = None


def qualifying_spend(programme: Programme, visit: Visit) -> int:
    """What the member actually paid: all payments except the excluded methods."""
    if not visit.payments:
        return max(visit.qualifying_minor or 0, 0)
    return sum(p.amount_minor for p in visit.payments if p.method not in programme.spend_excluded_methods)


def category_shares(qualifying_minor: int, items: tuple[Item, ...]) -> dict[str, int]:
    """The qualifying spend spread over the bill's categories in proportion to their amounts
    (largest remainder, so the shares add up exactly to ``qualifying_minor``)."""
    totals: dict[str, int] = {}
    for item in items:
        totals[item.category] = totals.get(item.category, 0) + item.amount_minor
    billed = sum(totals.values())
    if billed <= 0 or qualifying_minor <= 0:
        return {category: 0 for category in totals}
    shares = {category: qualifying_minor * amount // billed for category, amount in totals.items()}
    left = qualifying_minor - sum(shares.values())
    by_remainder = sorted(totals, key=lambda c: (-(qualifying_minor * totals[c] % billed), c))
    for category in by_remainder[:left]:
        shares[category] += 1
    return shares


def spend_points(programme: Programme, spend_minor: int, multiplier_bp: int = ONE_X) -> int:
    """Points for ``spend_minor`` at the programme's rate times ``multiplier_bp`` (rounded down)."""
    if spend_minor <= 0:
        return 0
    return spend_minor * programme.spend_points_per_unit * multiplier_bp // (programme.currency_minor_per_unit * ONE_X)


def campaign_runs_on(campaign: Campaign, day: date) -> bool:
    if campaign.starts_on and day < campaign.starts_on:
        return False
    if campaign.ends_on and day > campaign.ends_on:
        return False
    if campaign.days_of_month and day.day not in campaign.days_of_month:
        return False
    return not campaign.weekdays or day.isoweekday() in campaign.weekdays


def campaign_matches(campaign: Campaign, visit: Visit, member: MemberFacts) -> bool:
    """Whether the campaign applies to this visit (before its category and minimum-spend checks)."""
    return (campaign_runs_on(campaign, visit.day)
            and (not campaign.tiers or member.tier in campaign.tiers)
            and (not campaign.branches or visit.branch in campaign.branches)
            and (not campaign.segments or member.segment in campaign.segments)
            and (not campaign.kinds or visit.kind in campaign.kinds))


def campaign_lines(programme: Programme, campaign: Campaign, visit: Visit, qualifying: int,
                   shares: dict[str, int], tier_bp: int) -> list[Line]:
    """A matching campaign's awards: the multiplier's extra on the eligible spend (proportional, so a
    partial refund takes back its share) and the fixed bonus (taken back only with a full refund)."""
    if campaign.categories:
        if not any(item.category in campaign.categories for item in visit.items):
            return []
        eligible = sum(shares.get(category, 0) for category in campaign.categories)
    else:
        eligible = qualifying
    if eligible < campaign.min_spend_minor:
        return []
    lines = []
    if campaign.multiplier_bp > ONE_X:
        # on top of the tier-adjusted spend points of the eligible spend
        extra = (eligible * programme.spend_points_per_unit * tier_bp * (campaign.multiplier_bp - ONE_X)
                 // (programme.currency_minor_per_unit * ONE_X * ONE_X))
        if extra > 0:
            where = ", ".join(campaign.categories) or "the bill"
            lines.append(Line("campaign", extra, f"{campaign.name}: x{campaign.multiplier_bp / ONE_X:g} on {where}",
                              basis_minor=qualifying, campaign=campaign.code, multiplier_bp=campaign.multiplier_bp))
    if campaign.bonus_points > 0:
        lines.append(Line("campaign", campaign.bonus_points, f"{campaign.name}: +{campaign.bonus_points} bonus",
                          campaign=campaign.code))
    return lines


def quote_visit(programme: Programme, visit: Visit, member: MemberFacts) -> list[Line]:
    """Every award a completed visit earns, in the order the desk reads them out; no zero lines."""
    qualifying = qualifying_spend(programme, visit)
    tier_bp = programme.tier_multiplier_bp(member.tier)
    lines: list[Line] = []
    spent = spend_points(programme, qualifying, tier_bp)
    if spent > 0:
        per_unit = programme.spend_points_per_unit
        unit = programme.currency_minor_per_unit
        tier_note = f" x{tier_bp / ONE_X:g} ({member.tier})" if tier_bp != ONE_X else ""
        lines.append(Line("spend", spent, f"{per_unit} point(s) per {unit} minor units paid{tier_note}",
                          basis_minor=qualifying, multiplier_bp=tier_bp))
    if visit.kind in programme.visit_kinds and programme.visit_points > 0:
        lines.append(Line("visit", programme.visit_points, "completed visit"))
    if visit.kind in programme.activity_kinds and programme.activity_points > 0:
        lines.append(Line("activity", programme.activity_points, f"attended a {visit.kind.replace('_', ' ')}"))
    shares = category_shares(qualifying, visit.items)
    for campaign in programme.campaigns:
        if campaign_matches(campaign, visit, member):
            lines.extend(campaign_lines(programme, campaign, visit, qualifying, shares, tier_bp))
    if visit.first_paid_visit and member.has_referrer and programme.referral_first_paid_visit_points > 0:
        lines.append(Line("referral", programme.referral_first_paid_visit_points,
                          "referred member's first paid visit", to_referrer=True))
    return lines


def review_award(programme: Programme, satisfaction: str | None) -> int:
    """Points for answering a satisfaction survey (negative only where the group switched that on)."""
    if satisfaction is None:
        return 0
    return programme.review_points.get(satisfaction, 0)


def interaction_award(programme: Programme, kind: str, earned_today: int) -> int:
    """Points for one online interaction, within what is left of the member's daily cap."""
    if kind not in programme.interaction_points:
        raise Invalid(f"Unknown interaction {kind!r}.",
                      {"kind": [f"One of {', '.join(sorted(programme.interaction_points))}."]})
    left = max(programme.interaction_daily_cap - earned_today, 0)
    return min(programme.interaction_points[kind], left)


def reversal_due(points: int, basis_minor: int | None, refunded_minor: int, full: bool, already_reversed: int) -> int:
    """How many more points of one award a refund takes back.

    ``refunded_minor`` is everything refunded on the visit so far (this refund included), so several
    partial refunds never take back more, nor less, than one refund of the same total would. A fixed
    award (no basis) goes back only with a full refund.
    """
    if full:
        target = points
    elif basis_minor:
        target = points * min(max(refunded_minor, 0), basis_minor) // basis_minor
    else:
        target = 0
    return max(target - already_reversed, 0)
