"""Spending rules: cash deduction by points, coupon discounts, and how stored value pays and refunds.
No I/O here; amounts are integer minor units and points whole numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from services.kit.errors import Conflict, Invalid
from services.points.rules.programme import ONE_X, Programme, TopUpOffer


def points_step(programme: Programme) -> int:
    """The smallest number of points worth a whole minor unit (1 at 100 points = 1 CNY)."""
    return programme.cash_points_per_unit // math.gcd(programme.cash_points_per_unit,
                                                      programme.currency_minor_per_unit)


def cash_value_minor(programme: Programme, points: int) -> int:
    """What ``points`` are worth off a bill; ``Invalid`` unless that is a whole number of minor units."""
    step = points_step(programme)
    if points <= 0 or points % step:
        raise Invalid(f"Points for a cash deduction must be a positive multiple of {step}.",
                      {"points": [f"Must be a positive multiple of {step}."]})
    return points * programme.currency_minor_per_unit // programme.cash_points_per_unit


def cash_limit(programme: Programme, bill_minor: int, balance: int) -> tuple[int, int]:
    """(points, minor units): the most a member with ``balance`` may take off a bill of ``bill_minor``."""
    step = points_step(programme)
    cap_minor = bill_minor * programme.cash_max_share_bp // ONE_X
    by_bill = cap_minor * programme.cash_points_per_unit // programme.currency_minor_per_unit
    points = min(by_bill, max(balance, 0)) // step * step
    return points, points * programme.currency_minor_per_unit // programme.cash_points_per_unit


def check_cash_deduction(programme: Programme, bill_minor: int, points: int) -> int:
    """The deduction's value; ``Conflict`` when it is more than the programme allows off this bill."""
    value = cash_value_minor(programme, points)
    cap = bill_minor * programme.cash_max_share_bp // ONE_X
    if value > cap:
        share = programme.cash_max_share_bp / 100
        most, _ = cash_limit(programme, bill_minor, points)
        raise Conflict(f"Points can pay at most {share:g}% of a bill: {cap} minor units off this one, "
                       f"not {value}.", {"points": [f"At most {most} points on this bill."]})
    return value


@dataclass(frozen=True)
class CouponTerms:
    value_minor: int | None = None
    rate_bp: int | None = None  # 1000 = 10 % off
    max_discount_minor: int | None = None
    min_spend_minor: int = 0
    category: str | None = None  # None: any part of the bill


def coupon_discount(terms: CouponTerms, bill_minor: int, category_amounts: dict[str, int] | None) -> int:
    """What a coupon takes off a bill (never more than the part of the bill it applies to)."""
    if bill_minor < terms.min_spend_minor:
        raise Conflict(f"This coupon needs a bill of at least {terms.min_spend_minor} minor units.")
    if terms.category is None:
        eligible = bill_minor
    else:
        if category_amounts is None:
            raise Invalid(f"This coupon is for {terms.category}: say how much of the bill is {terms.category}.",
                          {"items": ["Needed for a coupon limited to a category."]})
        eligible = min(category_amounts.get(terms.category, 0), bill_minor)
        if eligible <= 0:
            raise Conflict(f"This coupon is for {terms.category}, and the bill has none.")
    if terms.value_minor is not None:
        return min(terms.value_minor, eligible)
    discount = eligible * (terms.rate_bp or 0) // ONE_X
    if terms.max_discount_minor is not None:
        discount = min(discount, terms.max_discount_minor)
    return discount


def wallet_split(amount: int, principal: int, bonus: int, order: str) -> tuple[int, int]:
    """(principal, bonus) parts of a stored-value payment of ``amount`` (at most the whole balance)."""
    if amount > principal + bonus:
        raise Conflict(f"The stored-value balance ({principal + bonus} minor units) does not cover {amount}.")
    if order == "principal_first":
        from_principal = min(amount, principal)
        return from_principal, amount - from_principal
    if order == "bonus_first":
        from_bonus = min(amount, bonus)
        return amount - from_bonus, from_bonus
    from_bonus = amount * bonus // (principal + bonus) if principal + bonus else 0
    from_principal = amount - from_bonus
    if from_principal > principal:  # rounding pushed a unit past the principal
        from_bonus += from_principal - principal
        from_principal = principal
    return from_principal, from_bonus


def refund_split(amount: int, paid: tuple[int, int], refunded: tuple[int, int]) -> tuple[int, int]:
    """(principal, bonus) parts of refunding ``amount`` of a payment that drew ``paid`` and has had
    ``refunded`` given back already: in the payment's proportion, exact once all is refunded."""
    paid_total = paid[0] + paid[1]
    done = refunded[0] + refunded[1]
    if amount <= 0 or done + amount > paid_total:
        raise Conflict(f"Only {paid_total - done} minor units of this payment are left to refund.")
    bonus_target = paid[1] * (done + amount) // paid_total
    bonus = bonus_target - refunded[1]
    return amount - bonus, bonus


def top_up_bonus(offers: tuple[TopUpOffer, ...], amount: int) -> int:
    """The bonus of the best offer a top-up of ``amount`` reaches (0 without one)."""
    reached = [offer.bonus_minor for offer in offers if amount >= offer.min_minor]
    return max(reached, default=0)
