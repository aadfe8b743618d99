"""The points programme: earning rules, campaigns, lot expiry, redemption and stored-value settings.

Every default below is the shipped default of SPEC.md ("Points", "Stored value"); a group overrides
any of them in its programme file (``POINTS_PROGRAMME_FILE``, YAML) or inline (``POINTS_PROGRAMME`` in
the service config). ``parse_programme`` validates what a group wrote and refuses anything it cannot
read exactly: unknown keys, fractional points, float money. No I/O here.

Rates are integers: multipliers in basis points (10000 = 1x, 15000 = 1.5x; a config may write "1.5"),
money in minor units (fen).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from services.kit.errors import Invalid
from services.records.events import PAYMENT_METHODS, VISIT_KINDS

ONE_X = 10_000  # a multiplier of 1x in basis points
MAX_MULTIPLIER_BP = 100 * ONE_X  # no rule multiplies by more than 100: beyond is a typing mistake, not a promotion
MAX_BONUS_POINTS = 10_000_000  # as the points commands' ceiling (schemas.MAX_POINTS)
MAX_SPEND_MINOR = 10_000_000_000  # as the largest bill (schemas.MAX_MINOR)
SATISFACTION = ("very_satisfied", "satisfied", "neutral", "dissatisfied", "very_dissatisfied")
WALLET_ORDERS = ("proportional", "principal_first", "bonus_first")
VISIT_RULES = ("spend", "visit", "campaign", "referral")  # the rules a completed visit may pay


@dataclass(frozen=True)
class Campaign:
    """A time-boxed multiplier on spend points or a fixed bonus per visit, for the visits it matches.

    An empty filter matches everything. ``days_of_month`` makes a recurring day (the monthly member
    day: ``[18]``); ``weekdays`` (1 = Monday) likewise. Dates are the group's local days, inclusive.
    """

    code: str
    name: str
    starts_on: date | None = None
    ends_on: date | None = None
    days_of_month: tuple[int, ...] = ()
    weekdays: tuple[int, ...] = ()
    multiplier_bp: int = ONE_X
    bonus_points: int = 0
    min_spend_minor: int = 0
    tiers: tuple[str, ...] = ()
    branches: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()


@dataclass(frozen=True)
class TopUpOffer:
    """Top up at least ``min_minor`` at once and get ``bonus_minor`` of bonus stored value."""

    min_minor: int
    bonus_minor: int


@dataclass(frozen=True)
class Programme:
    # spend: points per currency unit actually paid (not with points, coupons or bonus stored value)
    currency_minor_per_unit: int = 100
    spend_points_per_unit: int = 1
    spend_excluded_methods: tuple[str, ...] = ("points", "coupon", "stored_value_bonus")
    tier_multipliers_bp: dict[str, int] = field(default_factory=lambda: {
        "standard": ONE_X, "silver": 12_000, "gold": 15_000, "diamond": 20_000})
    # visit: per completed visit of these kinds; activity: talks, free clinics, events
    visit_points: int = 10
    visit_kinds: tuple[str, ...] = ("first", "return", "emergency")
    activity_points: int = 50
    activity_kinds: tuple[str, ...] = ("free_clinic", "event")
    # referral: to the referrer when the referred person enrols, and on their first paid visit
    referral_enrolment_points: int = 200
    referral_first_paid_visit_points: int = 300
    # review: by satisfaction; a negative value deducts (off by default: it punishes honest feedback)
    review_points: dict[str, int] = field(default_factory=lambda: {
        "very_satisfied": 30, "satisfied": 20, "neutral": 10, "dissatisfied": 0, "very_dissatisfied": 0})
    # online interaction: small amounts by kind, at most this many points per member per local day
    interaction_points: dict[str, int] = field(default_factory=lambda: {"share": 5, "comment": 5, "check_in": 2})
    interaction_daily_cap: int = 20
    campaigns: tuple[Campaign, ...] = ()
    # lots expire at the end of the calendar year this many years after the year earned (0 = same year)
    lot_expiry_years_after: int = 1
    expiry_warning_days: int = 30
    # cash deduction: this many points make one currency unit, for at most this share of a bill
    cash_points_per_unit: int = 100
    cash_max_share_bp: int = 5_000
    # stored value: which part of the balance a payment draws on; automatic top-up bonuses
    wallet_spend_order: str = "proportional"
    top_up_offers: tuple[TopUpOffer, ...] = ()
    # pending points: a visit's points stay locked this many days (the refund window) before they can be
    # spent, for the rules named (empty: every rule a visit pays); 0 switches it off (SPEC: optional, per rule)
    pending_days: int = 0
    pending_rules: tuple[str, ...] = ()
    # tier upgrade bought with points: the price of each tier that can be bought (none: not offered)
    tier_upgrade_prices: dict[str, int] = field(default_factory=dict)
    # family accounts: may points / stored value move between members of one family (off by default)
    family_points_transfer: bool = False
    family_wallet_transfer: bool = False

    def pending_for(self, rule: str) -> int:
        """The days a visit's points of ``rule`` stay locked (0: spendable at once)."""
        if self.pending_days and (not self.pending_rules or rule in self.pending_rules):
            return self.pending_days
        return 0

    def tier_multiplier_bp(self, tier: str | None) -> int:
        return self.tier_multipliers_bp.get(tier or "", ONE_X)

    def as_dict(self) -> dict[str, Any]:
        """The programme as plain JSON (for the ``programme`` RPC and the staff console)."""
        return plain(self)


def plain(value: Any) -> Any:
    """A programme or one of its parts as plain JSON (dates as ISO strings, tuples as lists); a campaign's
    plain form is read back by ``parse_campaign`` unchanged."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if hasattr(value, "__dataclass_fields__"):
        return {name: plain(getattr(value, name)) for name in value.__dataclass_fields__}
    return value


DEFAULT_PROGRAMME = Programme()


def _fail(path: str, message: str) -> Invalid:
    return Invalid(f"Points programme: {path}: {message}", {path: [message]})


def _whole(value: Any, path: str, minimum: int | None = 0, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(path, "must be a whole number")
    if minimum is not None and value < minimum:
        raise _fail(path, f"must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise _fail(path, f"must be at most {maximum}")
    return value


def _multiplier(value: Any, path: str) -> int:
    """A multiplier written as basis points (15000) or as a decimal ("1.5", 1.5) -> basis points."""
    if isinstance(value, bool):
        raise _fail(path, "must be a multiplier like 1.5 or 15000 (basis points)")
    if isinstance(value, int) and value >= 100:
        return _whole(value, path, minimum=ONE_X, maximum=MAX_MULTIPLIER_BP)
    try:
        exact = Decimal(str(value)) * ONE_X
    except (InvalidOperation, ValueError):
        raise _fail(path, "must be a multiplier like 1.5 or 15000 (basis points)") from None
    if not exact.is_finite() or exact != exact.to_integral_value() or exact < ONE_X:
        raise _fail(path, "must be at least 1 with at most four decimals")
    if exact > MAX_MULTIPLIER_BP:
        raise _fail(path, f"must be at most {MAX_MULTIPLIER_BP // ONE_X}")
    return int(exact)


def _date(value: Any, path: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise _fail(path, "must be a date YYYY-MM-DD") from None


def _codes(value: Any, path: str, allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise _fail(path, "must be a list of codes")
    if allowed is not None:
        unknown = [v for v in value if v not in allowed]
        if unknown:
            raise _fail(path, f"unknown {', '.join(unknown)} (one of {', '.join(allowed)})")
    return tuple(value)


def _points_map(value: Any, path: str, keys: tuple[str, ...] | None = None, minimum: int | None = 0) -> dict[str, int]:
    if not isinstance(value, dict):
        raise _fail(path, "must be a mapping")
    if keys is not None:
        unknown = sorted(set(value) - set(keys))
        if unknown:
            raise _fail(path, f"unknown {', '.join(unknown)}")
    return {str(k): _whole(v, f"{path}.{k}", minimum=minimum) for k, v in value.items()}


def _campaign(raw: Any, path: str) -> Campaign:
    """One campaign of the file (``path``: ``campaigns[2]``) or of the API (``path`` empty: the fields are
    named as the request body names them)."""
    def at(name: str) -> str:
        return f"{path}.{name}" if path else name

    whole = path or "campaign"
    if not isinstance(raw, dict):
        raise _fail(whole, "must be a mapping")
    known = set(Campaign.__dataclass_fields__) | {"multiplier"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise _fail(whole, f"unknown keys {', '.join(unknown)}")
    for required in ("code", "name"):
        if not isinstance(raw.get(required), str) or not raw[required]:
            raise _fail(at(required), "is required")
    campaign = Campaign(
        code=raw["code"], name=raw["name"],
        starts_on=_date(raw["starts_on"], at("starts_on")) if raw.get("starts_on") else None,
        ends_on=_date(raw["ends_on"], at("ends_on")) if raw.get("ends_on") else None,
        days_of_month=tuple(_whole(d, at("days_of_month"), 1, 31) for d in raw.get("days_of_month", ())),
        weekdays=tuple(_whole(d, at("weekdays"), 1, 7) for d in raw.get("weekdays", ())),
        multiplier_bp=_multiplier(raw.get("multiplier_bp", raw.get("multiplier", ONE_X)), at("multiplier")),
        bonus_points=_whole(raw.get("bonus_points", 0), at("bonus_points"), maximum=MAX_BONUS_POINTS),
        min_spend_minor=_whole(raw.get("min_spend_minor", 0), at("min_spend_minor"), maximum=MAX_SPEND_MINOR),
        tiers=_codes(raw.get("tiers", ()), at("tiers")),
        branches=_codes(raw.get("branches", ()), at("branches")),
        categories=_codes(raw.get("categories", ()), at("categories")),
        segments=_codes(raw.get("segments", ()), at("segments"), ("A", "B", "C")),
        kinds=_codes(raw.get("kinds", ()), at("kinds"), VISIT_KINDS),
    )
    if campaign.starts_on and campaign.ends_on and campaign.ends_on < campaign.starts_on:
        raise _fail(at("ends_on"), "is before starts_on")
    if campaign.multiplier_bp == ONE_X and campaign.bonus_points == 0:
        raise _fail(whole, "a campaign needs a multiplier above 1 or bonus points")
    return campaign


def parse_campaign(raw: Any) -> Campaign:
    """A campaign sent through the API, checked by the very rule that checks the programme file's."""
    return _campaign(raw, "")


CAMPAIGN_STATES = ("scheduled", "active", "ended")


def campaign_state(campaign: Campaign, ended_early: bool, today: date) -> str:
    """``scheduled`` before its first day, ``ended`` after its last day or once ended by hand, else ``active``
    (a recurring campaign is active between its dates even on days it does not run)."""
    if ended_early or (campaign.ends_on is not None and today > campaign.ends_on):
        return "ended"
    if campaign.starts_on is not None and today < campaign.starts_on:
        return "scheduled"
    return "active"


def parse_programme(raw: dict[str, Any] | None, base: Programme = DEFAULT_PROGRAMME) -> Programme:
    """``base`` with the settings a group wrote in ``raw``; ``Invalid`` naming the first bad setting."""
    if not raw:
        return base
    if not isinstance(raw, dict):
        raise _fail("programme", "must be a mapping")
    unknown = sorted(set(raw) - set(Programme.__dataclass_fields__) - {"tier_multipliers"})
    if unknown:
        raise _fail(unknown[0], "is not a setting of the points programme")
    changes: dict[str, Any] = {}
    for name in ("currency_minor_per_unit", "cash_points_per_unit"):
        if name in raw:
            changes[name] = _whole(raw[name], name, minimum=1)
    for name in ("spend_points_per_unit", "visit_points", "activity_points", "referral_enrolment_points",
                 "referral_first_paid_visit_points", "interaction_daily_cap", "lot_expiry_years_after",
                 "expiry_warning_days", "pending_days"):
        if name in raw:
            changes[name] = _whole(raw[name], name, maximum=100 if name == "lot_expiry_years_after" else None)
    if "cash_max_share_bp" in raw:
        changes["cash_max_share_bp"] = _whole(raw["cash_max_share_bp"], "cash_max_share_bp", 0, ONE_X)
    for name, allowed in (("spend_excluded_methods", PAYMENT_METHODS), ("visit_kinds", VISIT_KINDS),
                          ("activity_kinds", VISIT_KINDS)):
        if name in raw:
            changes[name] = _codes(raw[name], name, allowed)
    multipliers = raw.get("tier_multipliers", raw.get("tier_multipliers_bp"))
    if multipliers is not None:
        if not isinstance(multipliers, dict):
            raise _fail("tier_multipliers", "must map tier codes to multipliers")
        changes["tier_multipliers_bp"] = {str(k): _multiplier(v, f"tier_multipliers.{k}")
                                          for k, v in multipliers.items()}
    if "review_points" in raw:
        # the only place a negative value is allowed: a deduction a group may switch on
        changes["review_points"] = {**base.review_points,
                                    **_points_map(raw["review_points"], "review_points", SATISFACTION, minimum=None)}
    if "interaction_points" in raw:
        changes["interaction_points"] = _points_map(raw["interaction_points"], "interaction_points")
    if "campaigns" in raw:
        if not isinstance(raw["campaigns"], list):
            raise _fail("campaigns", "must be a list")
        campaigns = tuple(_campaign(c, f"campaigns[{i}]") for i, c in enumerate(raw["campaigns"]))
        codes = [c.code for c in campaigns]
        if len(set(codes)) != len(codes):
            raise _fail("campaigns", "campaign codes must be unique")
        changes["campaigns"] = campaigns
    if "pending_rules" in raw:
        changes["pending_rules"] = _codes(raw["pending_rules"], "pending_rules", VISIT_RULES)
    if "tier_upgrade_prices" in raw:
        changes["tier_upgrade_prices"] = _points_map(raw["tier_upgrade_prices"], "tier_upgrade_prices", minimum=1)
    for name in ("family_points_transfer", "family_wallet_transfer"):
        if name in raw:
            if not isinstance(raw[name], bool):
                raise _fail(name, "must be true or false")
            changes[name] = raw[name]
    if "wallet_spend_order" in raw:
        if raw["wallet_spend_order"] not in WALLET_ORDERS:
            raise _fail("wallet_spend_order", f"must be one of {', '.join(WALLET_ORDERS)}")
        changes["wallet_spend_order"] = raw["wallet_spend_order"]
    if "top_up_offers" in raw:
        if not isinstance(raw["top_up_offers"], list):
            raise _fail("top_up_offers", "must be a list")
        offers = []
        for i, offer in enumerate(raw["top_up_offers"]):
            if not isinstance(offer, dict) or set(offer) != {"min_minor", "bonus_minor"}:
                raise _fail(f"top_up_offers[{i}]", "needs exactly min_minor and bonus_minor")
            offers.append(TopUpOffer(_whole(offer["min_minor"], f"top_up_offers[{i}].min_minor", 1),
                                     _whole(offer["bonus_minor"], f"top_up_offers[{i}].bonus_minor", 0)))
        changes["top_up_offers"] = tuple(sorted(offers, key=lambda o: o.min_minor))
    return replace(base, **changes)
