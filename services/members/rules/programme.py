"""The membership programme: the tier ladder, how each tier qualifies, what it gives, and the rules of
the yearly review and of segmentation. No I/O.

``DEFAULT_PROGRAMME`` is the shipped default of SPEC.md (thresholds in CNY, stored in minor units);
``config/programme.yml`` ships the same programme as a file a group edits, and a group admin may store
a new version in the database (``members.set_programme``). Every rule reads the programme it is given
rather than these constants. ``programme_document`` / ``programme_from_document`` convert to and from
the plain dict the file, the database and the API carry; ``problems`` lists what makes one unusable.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields

from services.members.events import LANGUAGES
from services.records.events import VISIT_KINDS

CATEGORIES = ("exam", "treatment", "cleaning", "implant", "orthodontics", "whitening", "products")
REVIEW_BASES = ("anniversary", "tier_anniversary")
BENEFIT_YEAR_BASES = ("anniversary", "calendar")

CODE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_BP = 10_000


@dataclass(frozen=True)
class Thresholds:
    """Any one path qualifies. Money in minor units; None: the path does not apply to this tier.

    Every path counts the last 12 months (see ``tiers.window``): qualifying spend, the largest single
    top-up, points earned (never the balance) and completed visits of the kinds the programme counts.
    """

    spend_minor: int | None = None
    single_top_up_minor: int | None = None
    points_12m: int | None = None
    visits_12m: int | None = None

    def by_path(self) -> dict[str, int | None]:
        return {"spend": self.spend_minor, "top_up": self.single_top_up_minor, "points": self.points_12m,
                "visits": self.visits_12m}


@dataclass(frozen=True)
class Benefits:
    """What a tier adds on top of the tier below (see ``Programme.benefits_of`` for the sum)."""

    discounts_bp: dict[str, int] = field(default_factory=dict)  # category -> basis points off (500 = 5 %)
    quotas: dict[str, int] = field(default_factory=dict)  # benefit -> uses per benefit year
    birthday_month_discount_bp: int | None = None
    booking_horizon_days: int | None = None
    priority_booking: bool | None = None
    dedicated_advisor: bool | None = None
    event_invitations: bool | None = None


@dataclass(frozen=True)
class Tier:
    code: str
    names: dict[str, str]  # language -> display name
    thresholds: Thresholds
    benefits: Benefits


@dataclass(frozen=True)
class ReviewRules:
    """The yearly review: on which date it comes, how long the notice is, how far a tier may fall."""

    basis: str = "anniversary"  # "anniversary" of enrolment, or "tier_anniversary" (a year after the last change)
    notice_days: int = 30  # 0: a lowered tier drops on the review day itself
    max_steps_down: int = 1


@dataclass(frozen=True)
class SegmentRules:
    """Segments A/B/C and churn risk. Shares in basis points of the members with 12-month revenue."""

    a_top_share_bp: int = 2_000  # A: the top 20 % by 12-month revenue ...
    a_min_visits_12m: int = 24  # ... or at least 2 visits a month
    b_next_share_bp: int = 3_000  # B: the next 30 % ...
    b_min_visits_12m: int = 4  # ... or a visit a quarter
    churn_factor_pct: int = 150  # churn risk: no visit within 1.5x the member's usual interval
    default_interval_days: int = 180  # the usual interval of a member with a single visit (recall: 6 months)


@dataclass(frozen=True)
class Programme:
    tiers: tuple[Tier, ...]  # lowest first; the first is what every member starts in
    currency: str = "CNY"  # the currency of every money threshold
    categories: tuple[str, ...] = CATEGORIES  # service categories discounts apply to
    tier_visit_kinds: tuple[str, ...] = ("first", "return", "emergency")  # free clinics and events do not count
    benefit_year: str = "anniversary"  # quotas renew on the enrolment anniversary, or on 1 January
    review: ReviewRules = ReviewRules()
    segments: SegmentRules = SegmentRules()

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(tier.code for tier in self.tiers)

    @property
    def entry_tier(self) -> str:
        return self.tiers[0].code

    def rank(self, code: str) -> int:
        for index, tier in enumerate(self.tiers):
            if tier.code == code:
                return index
        raise KeyError(code)

    def rank_or_top(self, code: str) -> int:
        """The rank of ``code``; a code the programme no longer has counts as the top (never lowered by it)."""
        try:
            return self.rank(code)
        except KeyError:
            return len(self.tiers) - 1

    def tier(self, code: str) -> Tier:
        return self.tiers[self.rank(code)]

    def quota_benefits(self) -> tuple[str, ...]:
        found: list[str] = []
        for tier in self.tiers:
            found += [benefit for benefit in tier.benefits.quotas if benefit not in found]
        return tuple(found)

    def benefits_of(self, code: str) -> dict[str, object]:
        """The tier's benefits, each inherited from the tiers below unless the tier sets its own."""
        discounts: dict[str, int] = {category: 0 for category in self.categories}
        quotas: dict[str, int] = {}
        merged: dict[str, object] = {"birthday_month_discount_bp": 0, "booking_horizon_days": 3,
                                     "priority_booking": False, "dedicated_advisor": False,
                                     "event_invitations": False}
        for tier in self.tiers[: self.rank_or_top(code) + 1]:
            for category, bp in tier.benefits.discounts_bp.items():
                discounts[category] = max(discounts.get(category, 0), bp)
            for benefit, uses in tier.benefits.quotas.items():
                quotas[benefit] = quotas.get(benefit, 0) + uses
            for key in merged:
                value = getattr(tier.benefits, key)
                if value is not None:
                    merged[key] = value
        return {"discounts": discounts, "quotas": quotas, **merged}


def _cny(amount: int) -> int:
    return amount * 100


DEFAULT_PROGRAMME = Programme(tiers=(
    Tier("standard", {"en": "Standard", "zh-Hans": "普通会员", "zh-Hant": "普通會員", "es": "Estándar"},
         Thresholds(), Benefits(booking_horizon_days=3)),
    Tier("silver", {"en": "Silver", "zh-Hans": "银卡会员", "zh-Hant": "銀卡會員", "es": "Plata"},
         Thresholds(spend_minor=_cny(5_000), single_top_up_minor=_cny(3_000), points_12m=5_000, visits_12m=6),
         Benefits(discounts_bp={"exam": 500, "cleaning": 500, "products": 500}, quotas={"free_cleaning": 1},
                  birthday_month_discount_bp=500, event_invitations=True)),
    Tier("gold", {"en": "Gold", "zh-Hans": "金卡会员", "zh-Hant": "金卡會員", "es": "Oro"},
         Thresholds(spend_minor=_cny(20_000), single_top_up_minor=_cny(10_000), points_12m=20_000, visits_12m=12),
         Benefits(discounts_bp={"exam": 1000, "cleaning": 1000, "products": 1000, "treatment": 500,
                                "whitening": 1000},
                  quotas={"full_oral_exam": 1}, birthday_month_discount_bp=1000, booking_horizon_days=7,
                  priority_booking=True)),
    Tier("diamond", {"en": "Diamond", "zh-Hans": "钻石会员", "zh-Hant": "鑽石會員", "es": "Diamante"},
         Thresholds(spend_minor=_cny(50_000), single_top_up_minor=_cny(30_000), points_12m=50_000, visits_12m=24),
         Benefits(discounts_bp={"exam": 1500, "cleaning": 1500, "products": 1500, "treatment": 1000,
                                "whitening": 1500, "implant": 800, "orthodontics": 800},
                  quotas={"premium_treatment_discount": 1, "custom_care_package": 1},
                  birthday_month_discount_bp=1500, dedicated_advisor=True)),
))


# --- the plain document (file, database, API) ---------------------------------------------------------

_BENEFIT_SCALARS = ("birthday_month_discount_bp", "booking_horizon_days", "priority_booking",
                    "dedicated_advisor", "event_invitations")


def programme_document(programme: Programme) -> dict[str, object]:
    """The programme as a plain, JSON-able dict (the inverse of ``programme_from_document``)."""
    tiers = []
    for tier in programme.tiers:
        thresholds = {f.name: getattr(tier.thresholds, f.name) for f in fields(Thresholds)
                      if getattr(tier.thresholds, f.name) is not None}
        benefits: dict[str, object] = {"discounts_bp": dict(tier.benefits.discounts_bp),
                                       "quotas": dict(tier.benefits.quotas)}
        benefits.update({key: getattr(tier.benefits, key) for key in _BENEFIT_SCALARS
                         if getattr(tier.benefits, key) is not None})
        tiers.append({"code": tier.code, "names": dict(tier.names), "thresholds": thresholds, "benefits": benefits})
    return {
        "currency": programme.currency,
        "categories": list(programme.categories),
        "tier_visit_kinds": list(programme.tier_visit_kinds),
        "benefit_year": programme.benefit_year,
        "review": {f.name: getattr(programme.review, f.name) for f in fields(ReviewRules)},
        "segments": {f.name: getattr(programme.segments, f.name) for f in fields(SegmentRules)},
        "tiers": tiers,
    }


def programme_from_document(document: dict) -> Programme:
    """A programme from a document already checked for shape (``schemas.ProgrammeSchema``)."""
    tiers = []
    for spec in document["tiers"]:
        benefits = spec.get("benefits") or {}
        tiers.append(Tier(
            code=spec["code"], names=dict(spec.get("names") or {}),
            thresholds=Thresholds(**(spec.get("thresholds") or {})),
            benefits=Benefits(discounts_bp=dict(benefits.get("discounts_bp") or {}),
                              quotas=dict(benefits.get("quotas") or {}),
                              **{key: benefits.get(key) for key in _BENEFIT_SCALARS}),
        ))
    defaults = Programme(tiers=())
    return Programme(
        tiers=tuple(tiers),
        currency=document.get("currency") or defaults.currency,
        categories=tuple(document.get("categories") or defaults.categories),
        tier_visit_kinds=tuple(document.get("tier_visit_kinds") or defaults.tier_visit_kinds),
        benefit_year=document.get("benefit_year") or defaults.benefit_year,
        review=ReviewRules(**(document.get("review") or {})),
        segments=SegmentRules(**(document.get("segments") or {})),
    )


def problems(programme: Programme) -> dict[str, list[str]]:
    """What makes a programme unusable, by field; empty when it is sound."""
    found: dict[str, list[str]] = {}

    def add(where: str, message: str) -> None:
        found.setdefault(where, []).append(message)

    if not programme.tiers:
        add("tiers", "A programme needs at least one tier.")
        return found
    codes = [tier.code for tier in programme.tiers]
    if len(set(codes)) != len(codes):
        add("tiers", "Tier codes must be unique.")
    for category in programme.categories:
        if not CODE.match(category):
            add("categories", f"{category!r} is not a valid category code.")
    for kind in programme.tier_visit_kinds:
        if kind not in VISIT_KINDS:
            add("tier_visit_kinds", f"{kind!r} is not a visit kind ({', '.join(VISIT_KINDS)}).")
    if programme.benefit_year not in BENEFIT_YEAR_BASES:
        add("benefit_year", f"Must be one of {', '.join(BENEFIT_YEAR_BASES)}.")
    _review_problems(programme.review, add)
    _segment_problems(programme.segments, add)

    previous: dict[str, int] = {}
    for index, tier in enumerate(programme.tiers):
        where = f"tiers.{index}"
        if not CODE.match(tier.code):
            add(f"{where}.code", "Use lower-case letters, digits and _ (at most 40).")
        if not tier.names:
            add(f"{where}.names", "Give the tier a display name in at least one language.")
        for language in tier.names:
            if language not in LANGUAGES:
                add(f"{where}.names", f"{language!r} is not a supported language.")
        thresholds = tier.thresholds.by_path()
        given = {path: value for path, value in thresholds.items() if value is not None}
        if index == 0 and given:
            add(f"{where}.thresholds", "The first tier is where every member starts: it has no thresholds.")
        if index > 0 and not given:
            add(f"{where}.thresholds", "A tier above the first needs at least one qualifying path.")
        for path, value in given.items():
            if value < 1:
                add(f"{where}.thresholds", f"The {path} threshold must be at least 1.")
            elif path in previous and value <= previous[path]:
                add(f"{where}.thresholds", f"The {path} threshold must be higher than the tier below's.")
            previous[path] = value
        _benefit_problems(tier.benefits, programme.categories, f"{where}.benefits", add)
    return found


def _review_problems(review: ReviewRules, add: Callable[[str, str], None]) -> None:
    if review.basis not in REVIEW_BASES:
        add("review.basis", f"Must be one of {', '.join(REVIEW_BASES)}.")
    if not 0 <= review.notice_days <= 180:
        add("review.notice_days", "Must be between 0 and 180 days.")
    if review.max_steps_down < 1:
        add("review.max_steps_down", "Must be at least 1.")


def _segment_problems(rules: SegmentRules, add: Callable[[str, str], None]) -> None:
    if not 0 < rules.a_top_share_bp <= MAX_BP or not 0 <= rules.b_next_share_bp <= MAX_BP:
        add("segments", "Shares are basis points between 1 and 10000.")
    elif rules.a_top_share_bp + rules.b_next_share_bp > MAX_BP:
        add("segments", "The A and B shares together cannot exceed 10000 basis points.")
    if rules.a_min_visits_12m < 1 or rules.b_min_visits_12m < 1 or rules.b_min_visits_12m > rules.a_min_visits_12m:
        add("segments", "Visit minimums must be at least 1, and B's at most A's.")
    if rules.churn_factor_pct < 100:
        add("segments.churn_factor_pct", "Must be at least 100 (1x the usual interval).")
    if rules.default_interval_days < 1:
        add("segments.default_interval_days", "Must be at least 1 day.")


def _benefit_problems(benefits: Benefits, categories: tuple[str, ...], where: str,
                      add: Callable[[str, str], None]) -> None:
    for category, bp in benefits.discounts_bp.items():
        if category not in categories:
            add(f"{where}.discounts_bp", f"{category!r} is not one of the programme's categories.")
        if not 0 <= bp <= MAX_BP:
            add(f"{where}.discounts_bp", "Discounts are basis points between 0 and 10000.")
    for benefit, uses in benefits.quotas.items():
        if not CODE.match(benefit):
            add(f"{where}.quotas", f"{benefit!r} is not a valid benefit code.")
        if uses < 1:
            add(f"{where}.quotas", "A quota gives at least 1 use a year.")
    if benefits.birthday_month_discount_bp is not None and not 0 <= benefits.birthday_month_discount_bp <= MAX_BP:
        add(f"{where}.birthday_month_discount_bp", "Must be between 0 and 10000 basis points.")
    if benefits.booking_horizon_days is not None and not 1 <= benefits.booking_horizon_days <= 365:
        add(f"{where}.booking_horizon_days", "Must be between 1 and 365 days.")
