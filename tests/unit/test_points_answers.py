"""Points' answers are its output schemas' dumps of its rows: ids as text, times in UTC with ``Z``, money as
``{"amount", "currency"}`` (the row's currency, or the group's for rows that keep none), nothing extra."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from services.points.models import Coupon, PointsPosting, Redemption, Reward, WalletPosting
from services.points.reconciliation import Report
from services.points.rules.earning import Line
from services.points.schemas import (
    CURRENCY,
    CouponSchema,
    PostingSchema,
    QuoteResultSchema,
    ReconciliationSchema,
    RedemptionOutSchema,
    RewardOutSchema,
    WalletPostingSchema,
    WalletSchema,
)

MEMBER = uuid.UUID("7a3e5b20-0000-4000-8000-000000000001")
AT = datetime(2026, 11, 20, 2, 0, 0, 250000, tzinfo=UTC)
AT_TEXT = "2026-11-20T02:00:00.250000Z"


def test_a_posting_answers_its_ids_as_text_and_its_time_in_utc():
    posting = PointsPosting(id=1042, member_id=MEMBER, kind="reverse", rule=None, points=-30, balance_after=80,
                            source="visit", source_ref="v1", branch="SH01", operator="service:records", reason="x",
                            reverses_id=1001, redemption_id=None, expires_on=date(2027, 12, 31), created_at=AT)
    assert PostingSchema().dump(posting) == {
        "id": "1042", "member_id": str(MEMBER), "kind": "reverse", "rule": None, "points": -30, "balance_after": 80,
        "source": "visit", "source_ref": "v1", "branch": "SH01", "operator": "service:records", "reason": "x",
        "reverses_posting_id": "1001", "redemption_id": None, "expires_on": "2027-12-31", "created_at": AT_TEXT}


def test_a_coupon_reward_shows_its_coupon_in_the_group_s_currency_and_a_product_none():
    coupon = Reward(id=uuid.UUID(int=7), code="C1", name="Cleaning", description=None, kind="coupon", points_price=500,
                    stock=None, tiers="gold,silver", coupon_category="cleaning", coupon_value_minor=5000,
                    coupon_rate_bp=None, coupon_valid_days=90, active=True, updated_at=AT)
    with CURRENCY("CNY"):
        answer = RewardOutSchema().dump(coupon)
        product = RewardOutSchema().dump(Reward(id=uuid.UUID(int=8), code="P1", name="Brush", description="d",
                                                kind="product", points_price=100, stock=3, tiers="", active=False,
                                                updated_at=AT))
    assert answer["tiers"] == ["gold", "silver"] and answer["updated_at"] == AT_TEXT
    assert answer["coupon"] == {"category": "cleaning", "rate_bp": None, "value": {"amount": 5000, "currency": "CNY"},
                                "valid_days": 90}
    assert list(answer) == ["id", "code", "name", "description", "kind", "points_price", "stock", "tiers", "coupon",
                            "active", "updated_at"]
    assert product["coupon"] is None and product["tiers"] == [] and product["stock"] == 3


def test_a_redemption_has_no_coupon_key_and_money_only_for_a_cash_deduction():
    record = Redemption(id=uuid.UUID(int=9), member_id=MEMBER, kind="cash_deduction", reward_id=None, quantity=1,
                        points=5000, amount_minor=5000, bill_id="B1", state="pending", branch="SH01", operator="o",
                        posting_id=77, return_posting_id=None, coupon_id=None, reason=None, created_at=AT,
                        updated_at=AT)
    with CURRENCY("CNY"):
        answer = RedemptionOutSchema().dump(record)
    assert "coupon" not in answer
    assert answer["amount"] == {"amount": 5000, "currency": "CNY"} and answer["posting_id"] == "77"
    assert answer["reward_id"] is None and answer["return_posting_id"] is None


def test_coupon_and_wallet_money_take_the_row_s_own_currency():
    coupon = Coupon(id=uuid.UUID(int=3), code="ABC", member_id=MEMBER, source="birthday", title="Gift", category=None,
                    value_minor=None, rate_bp=1000, max_discount_minor=2000, min_spend_minor=0, currency="USD",
                    valid_from=date(2026, 11, 1), valid_until=date(2026, 12, 1), state="issued", redemption_id=None,
                    issued_at=AT, redeemed_at=None, redeemed_bill_id=None, redeemed_branch=None, discount_minor=None,
                    voided_reason=None)
    answer = CouponSchema().dump(coupon)
    assert (answer["value"], answer["max_discount"], answer["min_spend"], answer["discount"]) == (
        None, {"amount": 2000, "currency": "USD"}, {"amount": 0, "currency": "USD"}, None)
    assert answer["redeemed_at"] is None and answer["issued_at"] == AT_TEXT and answer["valid_until"] == "2026-12-01"
    posting = WalletPosting(id=5, member_id=MEMBER, kind="payment", principal_minor=-600, bonus_minor=-100,
                            principal_after=400, bonus_after=50, currency="USD", bill_id="B", refunds_id=None,
                            branch="SH01", operator="o", reason=None, created_at=AT)
    paid = WalletPostingSchema().dump(posting)
    assert paid["amount"] == {"amount": -700, "currency": "USD"}
    assert paid["balance_after"] == {"amount": 450, "currency": "USD"} and paid["refunds_payment_id"] is None
    held = WalletSchema().dump({"member_id": MEMBER, "principal_minor": 10, "bonus_minor": 2,
                                "largest_top_up_minor": 10, "currency": "CNY"})
    assert held == {"member_id": str(MEMBER), "balance": {"amount": 12, "currency": "CNY"},
                    "principal": {"amount": 10, "currency": "CNY"}, "bonus": {"amount": 2, "currency": "CNY"},
                    "largest_top_up": {"amount": 10, "currency": "CNY"}}


def test_a_quote_names_the_beneficiary_and_a_reconciliation_says_ok_from_its_mismatches():
    lines = [Line("spend", 100, "spend"), Line("referral", 300, "bonus", to_referrer=True)]
    quote = QuoteResultSchema().dump({"member_id": MEMBER, "tier": "gold", "qualifying": {"amount": 1, "currency": "CNY"},
                                      "lines": lines, "total_to_member": 100})
    assert [line["beneficiary"] for line in quote["lines"]] == ["member", "referrer"]
    assert list(quote["lines"][0]) == ["rule", "points", "description", "beneficiary", "basis_minor", "campaign",
                                       "multiplier_bp"]
    report = Report()
    assert ReconciliationSchema().dump({"report": report, "next_cursor": None})["ok"] is True
    report.add({"member_id": str(MEMBER)})
    assert ReconciliationSchema().dump({"report": report, "next_cursor": "c"}) == {
        "checked": 0, "ok": False, "mismatch_count": 1, "mismatches": [{"member_id": str(MEMBER)}],
        "points_outstanding": 0, "wallet_principal_minor": 0, "wallet_bonus_minor": 0, "next_cursor": "c"}
