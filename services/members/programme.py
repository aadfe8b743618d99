"""The membership programme: the tier ladder, how each tier qualifies, and what it gives. No I/O.

These are the shipped defaults of SPEC.md (thresholds in CNY, stored in minor units). A group sets
its own; every rule reads the programme it is given rather than these constants.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CATEGORIES = ("exam", "treatment", "cleaning", "implant", "orthodontics", "whitening", "products")


@dataclass(frozen=True)
class Thresholds:
    """Any one path qualifies. Money in minor units; None: the path does not apply to this tier."""

    spend_minor: int | None = None
    single_top_up_minor: int | None = None
    points_12m: int | None = None
    visits_12m: int | None = None


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
class Programme:
    tiers: tuple[Tier, ...]  # lowest first; the first is what every member starts in

    def rank(self, code: str) -> int:
        for index, tier in enumerate(self.tiers):
            if tier.code == code:
                return index
        raise KeyError(code)

    def tier(self, code: str) -> Tier:
        return self.tiers[self.rank(code)]

    def benefits_of(self, code: str) -> dict[str, object]:
        """The tier's benefits, each inherited from the tiers below unless the tier sets its own."""
        discounts: dict[str, int] = {category: 0 for category in CATEGORIES}
        quotas: dict[str, int] = {}
        merged: dict[str, object] = {"birthday_month_discount_bp": 0, "booking_horizon_days": 3,
                                     "priority_booking": False, "dedicated_advisor": False,
                                     "event_invitations": False}
        for tier in self.tiers[: self.rank(code) + 1]:
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
