"""The points service's contract: what its RPCs accept and return (also the gateway's OpenAPI).

The events points reads are loaded by their producers' contracts (``services/<producer>/events.py``).

Money is ``{"amount": <integer minor units>, "currency": "CNY"}`` (``kit.schemas.MoneySchema``);
points are whole numbers. Commands refuse unknown fields; event payloads ignore fields they do not
know, because a producer may add fields (docs/events.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from marshmallow import INCLUDE, ValidationError, fields, missing, validate, validates_schema
from marshmallow.experimental.context import Context
from marshmallow.utils import get_value

from services.kit.exports import MaskedExportSchema
from services.kit.schemas import MoneySchema, Schema, StrictInteger, UtcTime, computed, list_of, page_of
from services.points.events import COUPON_SOURCES
from services.points.rules.programme import CAMPAIGN_STATES
from services.records.events import PAYMENT_METHODS, VISIT_KINDS

MAX_POINTS = 10_000_000
MAX_MINOR = 10_000_000_000  # 100 million in a currency with cents: no bill or top-up is larger
BRANCH = validate.Length(min=1, max=16)
REF = validate.Length(min=1, max=128)
CATEGORY = validate.Length(min=1, max=24)
ISSUED_SOURCES = tuple(source for source in COUPON_SOURCES if source != "redemption")  # those come from redeem
REWARD_KINDS = ("product", "gift_card", "coupon")
COUPON_STATES = ("issued", "redeemed", "expired", "void")


class PositiveMoneySchema(MoneySchema):
    amount = StrictInteger(required=True, validate=validate.Range(min=1, max=MAX_MINOR),
                           metadata={"description": "Integer minor units (fen, cents), at least 1."})


class NonNegativeMoneySchema(MoneySchema):
    amount = StrictInteger(required=True, validate=validate.Range(min=0, max=MAX_MINOR),
                           metadata={"description": "Integer minor units (fen, cents)."})


# --- commands ----------------------------------------------------------------------------------------

class EarnSchema(Schema):
    """Points the desk, the app or a manager gives: an activity, an online interaction, an adjustment."""

    rule = fields.String(required=True, validate=validate.OneOf(("activity", "interaction", "adjust")))
    source_ref = fields.String(required=True, validate=REF,
                               metadata={"description": "What earned it: the talk's id, the shared post's id..."})
    branch = fields.String(required=True, validate=BRANCH)
    interaction = fields.String(validate=validate.Length(min=1, max=24),
                                metadata={"description": "For rule interaction: share, comment, check_in..."})
    points = StrictInteger(validate=validate.Range(min=-MAX_POINTS, max=MAX_POINTS),
                           metadata={"description": "For rule adjust only: points to give (or take, negative)."})
    reason = fields.String(validate=validate.Length(min=1, max=500))

    @validates_schema
    def _per_rule(self, data: dict[str, Any], **_: Any) -> None:
        rule = data.get("rule")
        if rule == "adjust":
            if not data.get("points"):
                raise ValidationError("An adjustment needs a non-zero number of points.", "points")
            if not data.get("reason"):
                raise ValidationError("Say why points are adjusted.", "reason")
        elif "points" in data:
            raise ValidationError("Points are set by the programme for this rule.", "points")
        if rule == "interaction" and not data.get("interaction"):
            raise ValidationError("Say which interaction (share, comment...).", "interaction")


class BillItemSchema(Schema):
    category = fields.String(required=True, validate=CATEGORY)
    code = fields.String(load_default="", validate=validate.Length(max=64))
    amount = fields.Nested(NonNegativeMoneySchema, required=True)


class BillPaymentSchema(Schema):
    method = fields.String(required=True, validate=validate.OneOf(PAYMENT_METHODS))
    amount = fields.Nested(NonNegativeMoneySchema, required=True)


class QuoteSchema(Schema):
    """A bill as the HIS would complete it: what would it earn?"""

    branch = fields.String(required=True, validate=BRANCH)
    kind = fields.String(load_default="return", validate=validate.OneOf(VISIT_KINDS))
    items = fields.List(fields.Nested(BillItemSchema), load_default=list, validate=validate.Length(max=200))
    payments = fields.List(fields.Nested(BillPaymentSchema), required=True, validate=validate.Length(min=1, max=50))
    completed_at = fields.AwareDateTime(load_default=None, allow_none=True)
    first_paid_visit = fields.Boolean(load_default=False)


class RedeemSchema(Schema):
    reward_id = fields.String(required=True, validate=REF)
    quantity = StrictInteger(load_default=1, validate=validate.Range(min=1, max=100))
    branch = fields.String(required=True, validate=BRANCH)
    note = fields.String(validate=validate.Length(max=500))


class TierPurchaseSchema(Schema):
    """A tier bought with points, at the price the programme sets (``tier_upgrade_prices``)."""
    tier = fields.String(required=True, validate=validate.Length(min=1, max=24))
    branch = fields.String(required=True, validate=BRANCH)


class CashDeductionSchema(Schema):
    """Points off a bill: ``points`` worth at most the programme's share of ``bill``."""

    bill_id = fields.String(required=True, validate=REF, metadata={"description": "The HIS bill number."})
    bill = fields.Nested(PositiveMoneySchema, required=True, metadata={"description": "The bill's total."})
    points = StrictInteger(required=True, validate=validate.Range(min=1, max=MAX_POINTS))
    branch = fields.String(required=True, validate=BRANCH)


class CashLimitSchema(Schema):
    bill = fields.Nested(PositiveMoneySchema, required=True)


class CancellationSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))


class CouponValueSchema(Schema):
    category = fields.String(load_default=None, allow_none=True, validate=CATEGORY)
    value = fields.Nested(PositiveMoneySchema, load_default=None, allow_none=True)
    rate_bp = StrictInteger(load_default=None, allow_none=True, validate=validate.Range(min=1, max=10_000),
                            metadata={"description": "Basis points off: 1000 = 10 % off."})
    valid_days = StrictInteger(load_default=90, validate=validate.Range(min=1, max=3660))

    @validates_schema
    def _value_or_rate(self, data: dict[str, Any], **_: Any) -> None:
        if (data.get("value") is None) == (data.get("rate_bp") is None):
            raise ValidationError("Give either a value or a rate.", "value")


class RewardSchema(Schema):
    """A new item of the rewards catalogue."""

    code = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9_-]{2,32}$"))
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    description = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2000))
    kind = fields.String(required=True, validate=validate.OneOf(REWARD_KINDS))
    points_price = StrictInteger(required=True, validate=validate.Range(min=1, max=MAX_POINTS))
    stock = StrictInteger(load_default=None, allow_none=True, validate=validate.Range(min=0, max=10_000_000),
                          metadata={"description": "How many are left; null: not counted (coupons)."})
    tiers = fields.List(fields.String(validate=validate.Length(min=1, max=24)), load_default=list,
                        metadata={"description": "Tiers it is offered to; empty: every tier."})
    coupon = fields.Nested(CouponValueSchema, load_default=None, allow_none=True)
    active = fields.Boolean(load_default=True)


class RewardChangesSchema(Schema):
    name = fields.String(validate=validate.Length(min=1, max=120))
    description = fields.String(allow_none=True, validate=validate.Length(max=2000))
    points_price = StrictInteger(validate=validate.Range(min=1, max=MAX_POINTS))
    add_stock = StrictInteger(validate=validate.Range(min=-10_000_000, max=10_000_000),
                              metadata={"description": "Stock received (positive) or written off (negative)."})
    tiers = fields.List(fields.String(validate=validate.Length(min=1, max=24)))
    active = fields.Boolean()


class RewardQuerySchema(Schema):
    tier = fields.String(validate=validate.Length(min=1, max=24))
    include_inactive = fields.Boolean(load_default=False)
    limit = StrictInteger(load_default=50, validate=validate.Range(min=1, max=100))
    cursor = fields.String(load_default=None, allow_none=True)


class TopUpSchema(Schema):
    amount = fields.Nested(PositiveMoneySchema, required=True, metadata={"description": "Money paid in."})
    bonus = fields.Nested(NonNegativeMoneySchema, load_default=None, allow_none=True,
                          metadata={"description": "Managers only; otherwise the programme's offers apply."})
    branch = fields.String(required=True, validate=BRANCH)
    note = fields.String(validate=validate.Length(max=500))


class WalletPaymentSchema(Schema):
    bill_id = fields.String(required=True, validate=REF)
    amount = fields.Nested(PositiveMoneySchema, required=True)
    branch = fields.String(required=True, validate=BRANCH)


class WalletRefundSchema(Schema):
    amount = fields.Nested(PositiveMoneySchema, required=True)
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))
    branch = fields.String(validate=BRANCH)


class CouponIssueSchema(Schema):
    """A coupon to give a member (``points.issue_coupon``; notifications sends birthday coupons)."""

    source = fields.String(required=True, validate=validate.OneOf(ISSUED_SOURCES))
    title = fields.String(required=True, validate=validate.Length(min=1, max=120))
    category = fields.String(load_default=None, allow_none=True, validate=CATEGORY,
                             metadata={"description": "Service category it applies to; null: the whole bill."})
    value = fields.Nested(PositiveMoneySchema, load_default=None, allow_none=True)
    rate_bp = StrictInteger(load_default=None, allow_none=True, validate=validate.Range(min=1, max=10_000))
    max_discount = fields.Nested(PositiveMoneySchema, load_default=None, allow_none=True)
    min_spend = fields.Nested(NonNegativeMoneySchema, load_default=None, allow_none=True)
    valid_from = fields.Date(load_default=None, allow_none=True)
    valid_until = fields.Date(load_default=None, allow_none=True)
    valid_days = StrictInteger(load_default=None, allow_none=True, validate=validate.Range(min=1, max=3660))

    @validates_schema
    def _value_or_rate(self, data: dict[str, Any], **_: Any) -> None:
        if (data.get("value") is None) == (data.get("rate_bp") is None):
            raise ValidationError("Give either a value or a rate.", "value")
        if data.get("max_discount") is not None and data.get("rate_bp") is None:
            raise ValidationError("A cap only applies to a rate.", "max_discount")
        if data.get("valid_until") is not None and data.get("valid_days") is not None:
            raise ValidationError("Give valid_until or valid_days, not both.", "valid_days")


class CouponUseSchema(Schema):
    """A coupon on a bill: whose bill, which bill, its total and (for a category coupon) its items."""

    member_id = fields.String(required=True, validate=REF)
    bill_id = fields.String(required=True, validate=REF)
    bill = fields.Nested(PositiveMoneySchema, required=True)
    items = fields.List(fields.Nested(BillItemSchema), load_default=None, allow_none=True)
    branch = fields.String(required=True, validate=BRANCH)


class VoidSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))


class PageQuerySchema(Schema):
    limit = StrictInteger(load_default=20, validate=validate.Range(min=1, max=100))
    cursor = fields.String(load_default=None, allow_none=True)


class CouponQuerySchema(PageQuerySchema):
    state = fields.String(validate=validate.OneOf(COUPON_STATES))


class DailyJobsSchema(Schema):
    day = fields.Date(load_default=None, allow_none=True,
                      metadata={"description": "The local day to run for (default: today)."})
    max_batches = StrictInteger(load_default=None, allow_none=True, validate=validate.Range(min=1, max=100_000))


# --- answers: what the entrypoints dump (and the OpenAPI document shows) --------------------------------

CURRENCY = Context[str]
"""The group's currency, for answers about rows that do not store one: ``with CURRENCY(currency): dump``."""


class Money(fields.Nested):
    """Money read off an object as ``{"amount", "currency"}`` (null when the amount is): ``amount`` names the
    integer minor units (an attribute, or a function of the object); the currency is the object's own
    ``currency``, else the group's (``CURRENCY``)."""

    def __init__(self, amount: str | Callable[[Any], int | None], **kwargs: Any) -> None:
        super().__init__(MoneySchema, **kwargs)
        self.amount = amount

    def serialize(self, attr: str, obj: Any, accessor: Any = None, **kwargs: Any) -> dict[str, Any] | None:
        minor = self.amount(obj) if callable(self.amount) else get_value(obj, self.amount)
        if minor is None:
            return None
        currency = get_value(obj, "currency")
        return {"amount": int(minor), "currency": CURRENCY.get() if currency in (None, missing) else currency}


class PostingSchema(Schema):
    id = fields.String()
    member_id = fields.String()
    kind = fields.String(metadata={"description": "earn, redeem, return, reverse, expire, deduct; transfer_out, "
                                                  "transfer_in (a member merge, its reversal, a family transfer)"})
    rule = fields.String(allow_none=True)
    points = fields.Integer(metadata={"description": "Signed: + credited, - taken."})
    balance_after = fields.Integer()
    source = fields.String()
    source_ref = fields.String(allow_none=True)
    branch = fields.String(allow_none=True)
    operator = fields.String()
    reason = fields.String(allow_none=True)
    reverses_posting_id = fields.String(attribute="reverses_id", allow_none=True)
    redemption_id = fields.String(allow_none=True)
    expires_on = fields.Date(allow_none=True)
    created_at = UtcTime()


PostingPageSchema = page_of(PostingSchema)


class ExpiryScheduleSchema(Schema):
    expires_on = fields.Date()
    points = fields.Integer()


class PendingScheduleSchema(Schema):
    release_on = fields.Date()
    points = fields.Integer()


class BalanceSchema(Schema):
    member_id = fields.String()
    balance = fields.Integer(metadata={"description": "Negative only as debt left by a refund."})
    spendable = fields.Integer()
    debt = fields.Integer()
    pending = fields.Integer(metadata={"description": "Points locked in the refund window: not in the balance, "
                                                      "not spendable, released by the daily job."})
    pending_schedule = fields.List(fields.Nested(PendingScheduleSchema))
    earned_total = fields.Integer()
    expiring_within_warning = fields.Integer()
    expiry_schedule = fields.List(fields.Nested(ExpiryScheduleSchema))


class LotSchema(Schema):
    id = fields.String()
    kind = fields.String()
    points = fields.Integer()
    remaining = fields.Integer()
    expires_on = fields.Date(allow_none=True)
    earned_by_posting_id = fields.String(attribute="posting_id", allow_none=True)
    created_at = UtcTime()


class LotListSchema(Schema):
    items = fields.List(fields.Nested(LotSchema))


class QuoteLineSchema(Schema):
    rule = fields.String()
    points = fields.Integer()
    description = fields.String()
    beneficiary = computed(fields.String(metadata={"description": "member, or referrer (the referral bonus)"}),
                           lambda line: "referrer" if line.to_referrer else "member")
    basis_minor = fields.Integer(allow_none=True)
    campaign = fields.String(allow_none=True)
    multiplier_bp = fields.Integer(allow_none=True)


class QuoteResultSchema(Schema):
    member_id = fields.String()
    tier = fields.String()
    qualifying = fields.Nested(MoneySchema)
    lines = fields.List(fields.Nested(QuoteLineSchema))
    total_to_member = fields.Integer()


class CashLimitResultSchema(Schema):
    member_id = fields.String()
    balance = fields.Integer()
    max_points = fields.Integer()
    max_amount = fields.Nested(MoneySchema)


class RewardCouponSchema(Schema):
    """What a coupon reward gives (``RewardOutSchema.coupon``)."""

    category = fields.String(attribute="coupon_category", allow_none=True)
    rate_bp = fields.Integer(attribute="coupon_rate_bp", allow_none=True)
    value = Money("coupon_value_minor", allow_none=True)
    valid_days = fields.Integer(attribute="coupon_valid_days")


class RewardOutSchema(Schema):
    id = fields.String()
    code = fields.String()
    name = fields.String()
    description = fields.String(allow_none=True)
    kind = fields.String()
    points_price = fields.Integer()
    stock = fields.Integer(allow_none=True)
    tiers = computed(fields.List(fields.String()), lambda reward: [t for t in reward.tiers.split(",") if t])
    coupon = computed(fields.Dict(allow_none=True), lambda reward: RewardCouponSchema().dump(reward)
                      if reward.kind == "coupon" else None)
    active = fields.Boolean()
    updated_at = UtcTime()


RewardPageSchema = page_of(RewardOutSchema, "RewardPageSchema")


class CouponSchema(Schema):
    id = fields.String()
    code = fields.String()
    member_id = fields.String()
    source = fields.String()
    title = fields.String()
    category = fields.String(allow_none=True)
    value = Money("value_minor", allow_none=True)
    rate_bp = fields.Integer(allow_none=True)
    max_discount = Money("max_discount_minor", allow_none=True)
    min_spend = Money("min_spend_minor", allow_none=True)
    valid_from = fields.Date()
    valid_until = fields.Date()
    state = fields.String(validate=validate.OneOf(COUPON_STATES))
    redemption_id = fields.String(allow_none=True)
    issued_at = UtcTime()
    redeemed_at = UtcTime(allow_none=True)
    redeemed_bill_id = fields.String(allow_none=True)
    redeemed_branch = fields.String(allow_none=True)
    discount = Money("discount_minor", allow_none=True)
    voided_reason = fields.String(allow_none=True)


CouponPageSchema = page_of(CouponSchema)


class CouponCheckSchema(Schema):
    coupon = fields.Nested(CouponSchema)
    discount = fields.Nested(MoneySchema)


class RedemptionOutSchema(Schema):
    id = fields.String()
    member_id = fields.String()
    kind = fields.String(metadata={"description": "reward, cash_deduction or tier_upgrade"})
    reward_id = fields.String(allow_none=True)
    quantity = fields.Integer()
    points = fields.Integer()
    state = fields.String(metadata={"description": "pending, fulfilled, cancelled"})
    bill_id = fields.String(allow_none=True)
    amount = Money("amount_minor", allow_none=True)
    branch = fields.String(allow_none=True)
    operator = fields.String()
    posting_id = fields.String()
    return_posting_id = fields.String(allow_none=True)
    coupon_id = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    created_at = UtcTime()
    updated_at = UtcTime()
    coupon = fields.Nested(CouponSchema, allow_none=True)  # redeem's answer only
    tier = fields.Dict(allow_none=True, metadata={"description": "buy_tier's answer only: the member's tier "
                                                                 "as the members service placed it"})


RedemptionPageSchema = page_of(RedemptionOutSchema, "RedemptionPageSchema")


class WalletSchema(Schema):
    member_id = fields.String()
    balance = Money(lambda held: held["principal_minor"] + held["bonus_minor"])
    principal = Money("principal_minor", metadata={"description": "Money the member paid in."})
    bonus = Money("bonus_minor", metadata={"description": "Bonus given with top-ups (not refundable)."})
    largest_top_up = Money("largest_top_up_minor")


class WalletPostingSchema(Schema):
    id = fields.String()
    member_id = fields.String()
    kind = fields.String(metadata={"description": "top_up, payment, refund; transfer_out, transfer_in (a member "
                                                  "merge or its reversal)"})
    amount = Money(lambda posting: posting.principal_minor + posting.bonus_minor)
    principal = Money("principal_minor")
    bonus = Money("bonus_minor")
    balance_after = Money(lambda posting: posting.principal_after + posting.bonus_after)
    bill_id = fields.String(allow_none=True)
    refunds_payment_id = fields.String(attribute="refunds_id", allow_none=True)
    branch = fields.String(allow_none=True)
    operator = fields.String()
    reason = fields.String(allow_none=True)
    created_at = UtcTime()


WalletPostingPageSchema = page_of(WalletPostingSchema)


class VisitAskSchema(Schema):
    """A visit the audit asks about, with what records says was refunded of its qualifying spend."""
    visit_id = fields.String(required=True, validate=REF)
    refunded_minor = StrictInteger(load_default=0, validate=validate.Range(min=0))
    full = fields.Boolean(load_default=False)
    completed_at = fields.AwareDateTime(load_default=None, allow_none=True)


class ReconciliationSchema(Schema):
    """A ``reconciliation.Report`` (``report``) and the cursor of the next page."""

    checked = fields.Integer(attribute="report.checked")
    ok = computed(fields.Boolean(), lambda answer: answer["report"].mismatch_count == 0)
    mismatch_count = fields.Integer(attribute="report.mismatch_count")
    mismatches = fields.List(fields.Dict(), attribute="report.mismatches")
    points_outstanding = fields.Integer(attribute="report.points_outstanding")
    wallet_principal_minor = fields.Integer(attribute="report.wallet_principal_minor")
    wallet_bonus_minor = fields.Integer(attribute="report.wallet_bonus_minor")
    next_cursor = fields.String(allow_none=True)


# --- family transfers and balances ----------------------------------------------------------------------

class PointsTransferSchema(Schema):
    """Points moved from one member of a family to another (where the programme allows it)."""
    from_member_id = fields.UUID(required=True)
    to_member_id = fields.UUID(required=True)
    points = StrictInteger(required=True, validate=validate.Range(min=1, max=10_000_000))
    branch = fields.String(required=True, validate=BRANCH)
    reason = fields.String(validate=validate.Length(max=500))


class WalletTransferSchema(Schema):
    """Stored value moved from one member of a family to another (where the programme allows it)."""
    from_member_id = fields.UUID(required=True)
    to_member_id = fields.UUID(required=True)
    amount = fields.Nested(PositiveMoneySchema, required=True)
    branch = fields.String(required=True, validate=BRANCH)
    reason = fields.String(validate=validate.Length(max=500))


class FamilyTransferSchema(Schema):
    id = fields.String()
    family_id = fields.String()
    from_member_id = fields.String()
    to_member_id = fields.String()
    kind = fields.String(metadata={"description": "points or wallet"})
    points = fields.Integer()
    principal = Money("principal_minor")
    bonus = Money("bonus_minor")
    out_posting_id = fields.String(metadata={"description": "The giver's transfer_out posting (points or wallet)."})
    in_posting_id = fields.String(metadata={"description": "The receiver's transfer_in posting."})
    branch = fields.String(allow_none=True)
    operator = fields.String()
    reason = fields.String(allow_none=True)
    created_at = UtcTime()


class FamilyMemberBalanceSchema(Schema):
    member_id = fields.String()
    relation = fields.String()
    points = fields.Integer(metadata={"description": "Points held (never negative; a debt is apart)."})
    debt = fields.Integer()
    pending = fields.Integer(metadata={"description": "Points locked in the refund window."})
    principal = Money("principal_minor")
    bonus = Money("bonus_minor")


class FamilyBalancesSchema(Schema):
    """A family's balances: each member's and the family's totals."""
    family_id = fields.String()
    contact_member_id = fields.String()
    members = fields.List(fields.Nested(FamilyMemberBalanceSchema))
    points = fields.Integer()
    principal = Money("principal_minor")
    bonus = Money("bonus_minor")


# --- opening balances (imports) ---------------------------------------------------------------------------

class OpeningRowSchema(Schema):
    """One row of an import's opening balances: points (``points``, ``expires_on``) or stored value
    (``principal_minor``, ``bonus_minor`` in ``currency``), under the row's idempotency key."""

    key = fields.String(required=True, validate=validate.Length(min=1, max=180))
    member_id = fields.String(required=True, validate=REF)
    branch = fields.String(load_default=None, allow_none=True, validate=BRANCH)
    points = StrictInteger(validate=validate.Range(min=1, max=MAX_POINTS))
    expires_on = fields.Date()
    principal_minor = StrictInteger(validate=validate.Range(min=0, max=10**12))
    bonus_minor = StrictInteger(validate=validate.Range(min=0, max=10**12))
    currency = fields.String(validate=validate.Length(equal=3))


class OpeningBatchSchema(Schema):
    ledger = fields.String(required=True, validate=validate.OneOf(("points", "wallet")))
    dry_run = fields.Boolean(load_default=False, metadata={"description": "Check each row, post nothing."})
    rows = fields.List(fields.Nested(OpeningRowSchema), required=True, validate=validate.Length(min=1, max=2000))

    @validates_schema
    def _per_ledger(self, data: dict[str, Any], **_: Any) -> None:
        needed = ("points", "expires_on") if data.get("ledger") == "points" else (
            "principal_minor", "bonus_minor", "currency")
        for number, row in enumerate(data.get("rows") or []):
            missing_fields = [name for name in needed if row.get(name) is None]
            if missing_fields:
                raise ValidationError({number: {name: ["Required."] for name in missing_fields}}, "rows")
            if data.get("ledger") == "wallet" and row["principal_minor"] + row["bonus_minor"] == 0:
                raise ValidationError({number: {"principal_minor": ["An opening balance of nothing."]}}, "rows")


class OpeningOutcomeSchema(Schema):
    """``valid`` (dry run), ``posted``, ``present`` (posted before: a rerun, or the member's opening came from
    another import) or ``invalid`` (``message``, ``errors``)."""

    key = fields.String()
    status = fields.String(validate=validate.OneOf(("valid", "posted", "present", "invalid")))
    member_id = fields.String()
    message = fields.String()
    errors = fields.Dict()


class OpeningOutcomesSchema(Schema):
    items = fields.List(fields.Nested(OpeningOutcomeSchema))
# --- the warehouse's exports (kit.exports: order, cursor, masking) ------------------------------------------


class PostingExportSchema(MaskedExportSchema, PostingSchema):
    """A points posting as the warehouse gets it; who posted it and why masked unless revealed."""

    MASKED = ("operator", "reason")


class WalletPostingExportSchema(MaskedExportSchema, WalletPostingSchema):
    """A stored-value posting as the warehouse gets it; who posted it and why masked unless revealed."""

    MASKED = ("operator", "reason")


class CouponExportSchema(MaskedExportSchema, CouponSchema):
    """A coupon as the warehouse gets it, again each time it changes: its code (whoever holds it can use it)
    and a void's reason masked unless revealed."""

    MASKED = ("code", "voided_reason")

    updated_at = UtcTime()


class LotExportSchema(Schema):
    """A lot with points left (a points opening: how many, and the day they expire) as the warehouse gets it,
    again with every lot of its member each time the member's points account changes."""

    id = fields.Integer()
    member_id = fields.String()
    points = fields.Integer(attribute="remaining", metadata={"description": "Points left in the lot."})
    earned = fields.Integer(attribute="points", metadata={"description": "Points the lot started with."})
    expires_on = fields.Date(allow_none=True)
    created_at = UtcTime()
    account_updated_at = UtcTime(metadata={"description": "When the member's points last changed (its last "
                                                            "posting this export read)."})


class WalletExportSchema(Schema):
    """A member's stored value as the warehouse gets it (the paid part and the bonus apart), again each time
    it changes; money in minor units."""

    member_id = fields.String()
    currency = fields.String()
    principal_minor = fields.Integer()
    bonus_minor = fields.Integer()
    created_at = UtcTime()
    updated_at = UtcTime()


# --- campaigns (created, changed and ended through the API; the programme file's are read-only) -------------

_CAMPAIGN_RULE = ("Checked by the programme file's own campaign rule (services/points/rules/programme.py), so a "
                  "422 names the field as the body does: multiplier, ends_on, segments...")


class CampaignTermsSchema(Schema):
    """A campaign's terms: a multiplier on spend points and/or a fixed bonus per visit, for the visits it matches
    (an empty filter matches every visit). Dates are the group's local days, inclusive."""

    code = fields.String(required=True, metadata={
        "description": "1 to 32 letters, digits, _ or -; unique across the programme file and the API. "
                       + _CAMPAIGN_RULE})
    name = fields.String(required=True)
    starts_on = fields.Date(allow_none=True)
    ends_on = fields.Date(allow_none=True, metadata={"description": "Not before starts_on."})
    days_of_month = fields.List(fields.Integer(), metadata={"description": "1-31: a recurring day (member day: [18])."})
    weekdays = fields.List(fields.Integer(), metadata={"description": "1 (Monday) - 7."})
    multiplier = fields.Raw(metadata={"description": "On spend points: 1.5 or \"1.5\" (at most four decimals), or "
                                                     "basis points 15000; at least 1.", "example": "2"})
    bonus_points = fields.Integer(metadata={"description": "Whole points per matching visit."})
    min_spend_minor = fields.Integer(metadata={"description": "Integer minor units of qualifying spend."})
    tiers = fields.List(fields.String())
    branches = fields.List(fields.String())
    categories = fields.List(fields.String(), metadata={"description": "The spend of these categories is multiplied."})
    segments = fields.List(fields.String(validate=validate.OneOf(("A", "B", "C"))))
    kinds = fields.List(fields.String(validate=validate.OneOf(VISIT_KINDS)))


class CampaignChangeSchema(CampaignTermsSchema):
    """A campaign's next version: every term (what is left out takes its default), the code as in the path."""

    code = fields.String(metadata={"description": "Optional; must be the code in the path (it cannot change)."})
    expected_version = StrictInteger(load_default=None, allow_none=True, validate=validate.Range(min=1), metadata={
        "description": "The version you edited: 409 if the campaign changed since."})


class CampaignBodySchema(Schema):
    """Only the checks every body gets (an object, no NUL character); the terms themselves are checked by the
    programme file's campaign rule, not a second time here."""

    class Meta:
        unknown = INCLUDE


class ExpectedVersionSchema(Schema):
    expected_version = StrictInteger(load_default=None, allow_none=True, validate=validate.Range(min=1))


class CampaignQuerySchema(Schema):
    state = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(CAMPAIGN_STATES))


class CampaignVersionSchema(Schema):
    version = fields.Integer()
    terms = fields.Dict(metadata={"description": "The terms of this version, as stored."})
    created_at = UtcTime()
    created_by = fields.String()


class CampaignSchema(CampaignTermsSchema):
    """A campaign as it stands (its current version), with its state today and who did what."""

    multiplier_bp = fields.Integer(metadata={"description": "The multiplier in basis points (10000 = 1x)."})
    starts_on = fields.String(allow_none=True)
    ends_on = fields.String(allow_none=True)
    source = fields.String(metadata={"description": "file (read-only here) or api."})
    state = fields.String(metadata={"description": ", ".join(CAMPAIGN_STATES) + " (from the dates, or ended by hand)"})
    version = fields.Integer(allow_none=True, metadata={"description": "The version in force (null: file)."})
    created_at = UtcTime()
    created_by = fields.String()
    updated_at = UtcTime()
    updated_by = fields.String()
    ended_at = UtcTime(allow_none=True, metadata={"description": "When it was ended by hand."})
    ended_by = fields.String(allow_none=True)
    versions = fields.List(fields.Nested(CampaignVersionSchema), metadata={
        "description": "Every version, oldest first (only when one campaign is asked for)."})

    class Meta:
        exclude = ("multiplier",)


CampaignListSchema = list_of(CampaignSchema)


# --- earning rules changed through the API (over the programme file's; earning_rules.py) --------------------

_EARNING_RULE = ("Checked by the programme file's own parsing (services/points/rules/programme.py), so a 422 names "
                 "the field as the body does: visit_points, tier_multipliers.gold, review_points.satisfied...")


class EarningRulesTermsSchema(Schema):
    """The earning rules a version sets; a field left out keeps the programme file's value (send none: the file's
    rules again). Points are whole numbers; multipliers as 1.5, "1.5" or basis points 15000."""

    spend_points_per_unit = fields.Integer(metadata={"description": "Points per currency unit paid. " + _EARNING_RULE})
    tier_multipliers = fields.Dict(keys=fields.String(), values=fields.Raw(), metadata={
        "description": "Tier code -> multiplier on spend points (the whole map; a tier left out: 1x).",
        "example": {"standard": 1, "silver": "1.2", "gold": 15000}})
    visit_points = fields.Integer(metadata={"description": "Points per completed visit of visit_kinds."})
    visit_kinds = fields.List(fields.String(validate=validate.OneOf(VISIT_KINDS)))
    activity_points = fields.Integer(metadata={"description": "Points per attended activity of activity_kinds."})
    activity_kinds = fields.List(fields.String(validate=validate.OneOf(VISIT_KINDS)))
    referral_enrolment_points = fields.Integer(metadata={"description": "To the referrer when the referred enrols."})
    referral_first_paid_visit_points = fields.Integer(metadata={
        "description": "To the referrer on the referred person's first paid visit."})
    review_points = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={
        "description": "Satisfaction -> points (negative deducts); satisfactions left out keep the file's."})
    interaction_points = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={
        "description": "Online interaction kind -> points (the whole map)."})
    interaction_daily_cap = fields.Integer(metadata={"description": "Most interaction points per member per day."})


class EarningRulesChangeSchema(EarningRulesTermsSchema):
    """The next version of the earning rules: the fields it sets, and the version it was edited from."""

    expected_version = StrictInteger(required=True, validate=validate.Range(min=0), metadata={
        "description": "The version you edited (0: none stored yet): 409 if the rules changed since."})


class EarningRulesBodySchema(CampaignBodySchema):
    """Only the checks every body gets; the rules are checked by the programme file's parsing, not here."""


class EarningRulesVersionSchema(Schema):
    expected_version = StrictInteger(required=True, validate=validate.Range(min=0))


class EarningRulesSchema(Schema):
    """The earning rules in force: the programme file's with the version stored through the API over it."""

    version = fields.Integer(metadata={"description": "The stored version in force (0: none stored)."})
    source = fields.String(metadata={"description": "file (nothing stored over it) or stored."})
    rules = fields.Nested(EarningRulesTermsSchema, metadata={
        "description": "Every earning rule in force (multipliers in basis points, 10000 = 1x)."})
    stored = fields.List(fields.String(), metadata={"description": "The fields the version in force sets."})
    currency_minor_per_unit = fields.Integer(metadata={
        "description": "The currency unit spend points count, in minor units (programme file only)."})
    updated_at = UtcTime(allow_none=True)
    updated_by = fields.String(allow_none=True)
    versions = fields.List(fields.Nested(CampaignVersionSchema), metadata={
        "description": "Every stored version, oldest first: the fields it set, who stored it and when."})
