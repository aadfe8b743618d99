"""Spending rules: cash deduction by points, coupon discounts, stored-value payments and refunds."""

import pytest

from services.kit.errors import Conflict, Invalid
from services.points.rules.programme import DEFAULT_PROGRAMME, TopUpOffer, parse_programme
from services.points.rules.redemption import (
    CouponTerms,
    cash_limit,
    cash_value_minor,
    check_cash_deduction,
    coupon_discount,
    points_step,
    refund_split,
    top_up_bonus,
    wallet_split,
)

P = DEFAULT_PROGRAMME


@pytest.mark.parametrize(("points", "minor"), [(1, 1), (100, 100), (15_000, 150_00)])
def test_a_hundred_points_are_one_yuan(points, minor):
    assert cash_value_minor(P, points) == minor


@pytest.mark.parametrize("points", [0, -100])
def test_no_points_or_negative_points_are_refused(points):
    with pytest.raises(Invalid):
        cash_value_minor(P, points)


def test_a_rate_that_makes_half_fen_needs_points_in_steps():
    programme = parse_programme({"cash_points_per_unit": 200})  # 200 points = 1 CNY: 2 points = 1 fen
    assert points_step(programme) == 2 and cash_value_minor(programme, 4) == 2
    with pytest.raises(Invalid):
        cash_value_minor(programme, 3)


@pytest.mark.parametrize(("bill", "balance", "points", "minor"), [
    (300_00, 100_000, 15_000, 150_00),  # half the bill
    (300_01, 100_000, 15_000, 150_00),  # half of an odd amount rounds down
    (300_00, 4_321, 4_321, 43_21),  # the balance is the limit
    (300_00, 0, 0, 0),
    (300_00, -50, 0, 0),  # a member in debt has nothing to spend
    (1, 100, 0, 0),
])
def test_the_cash_limit_is_half_the_bill_or_the_balance(bill, balance, points, minor):
    assert cash_limit(P, bill, balance) == (points, minor)


@pytest.mark.parametrize(("bill", "points", "allowed"), [
    (300_00, 15_000, True), (300_00, 15_001, False), (300_01, 15_000, True), (299_99, 15_000, False),
])
def test_a_deduction_over_half_the_bill_is_refused(bill, points, allowed):
    if allowed:
        assert check_cash_deduction(P, bill, points) == points
    else:
        with pytest.raises(Conflict):
            check_cash_deduction(P, bill, points)


@pytest.mark.parametrize(("terms", "bill", "categories", "discount"), [
    (CouponTerms(value_minor=50_00), 300_00, None, 50_00),
    (CouponTerms(value_minor=50_00), 30_00, None, 30_00),  # never more than the bill
    (CouponTerms(rate_bp=1000), 300_00, None, 30_00),  # 10 % off
    (CouponTerms(rate_bp=1000, max_discount_minor=20_00), 300_00, None, 20_00),
    (CouponTerms(rate_bp=1500), 333, None, 49),  # rounded down
    (CouponTerms(value_minor=50_00, category="cleaning"), 300_00, {"cleaning": 30_00, "exam": 270_00}, 30_00),
    (CouponTerms(rate_bp=5000, category="cleaning"), 300_00, {"cleaning": 100_00}, 50_00),
    (CouponTerms(value_minor=10_00, min_spend_minor=100_00), 100_00, None, 10_00),
])
def test_coupon_discounts(terms, bill, categories, discount):
    assert coupon_discount(terms, bill, categories) == discount


@pytest.mark.parametrize(("terms", "bill", "categories", "error"), [
    (CouponTerms(value_minor=10_00, min_spend_minor=100_00), 99_99, None, Conflict),
    (CouponTerms(value_minor=10_00, category="cleaning"), 100_00, {"exam": 100_00}, Conflict),
    (CouponTerms(value_minor=10_00, category="cleaning"), 100_00, None, Invalid),
])
def test_coupon_refusals(terms, bill, categories, error):
    with pytest.raises(error):
        coupon_discount(terms, bill, categories)


@pytest.mark.parametrize(("amount", "principal", "bonus", "order", "split"), [
    (100_00, 300_00, 100_00, "proportional", (75_00, 25_00)),
    (1, 300_00, 100_00, "proportional", (1, 0)),
    (3, 1, 2, "proportional", (1, 2)),
    (400_00, 300_00, 100_00, "proportional", (300_00, 100_00)),
    (100_00, 0, 100_00, "proportional", (0, 100_00)),
    (100_00, 300_00, 100_00, "principal_first", (100_00, 0)),
    (350_00, 300_00, 100_00, "principal_first", (300_00, 50_00)),
    (100_00, 300_00, 100_00, "bonus_first", (0, 100_00)),
    (150_00, 300_00, 100_00, "bonus_first", (50_00, 100_00)),
])
def test_a_card_payment_draws_principal_and_bonus_as_configured(amount, principal, bonus, order, split):
    drawn = wallet_split(amount, principal, bonus, order)
    assert drawn == split and sum(drawn) == amount and drawn[0] <= principal and drawn[1] <= bonus


def test_a_card_payment_over_the_balance_is_refused():
    with pytest.raises(Conflict):
        wallet_split(400_01, 300_00, 100_00, "proportional")


def test_refunds_go_back_in_the_payment_s_proportion_and_are_exact_in_the_end():
    paid = (75_00, 25_00)
    first = refund_split(33_33, paid, (0, 0))
    second = refund_split(66_67, paid, first)
    assert sum(first) == 33_33 and (first[0] + second[0], first[1] + second[1]) == paid
    with pytest.raises(Conflict):
        refund_split(1, paid, paid)  # nothing left to refund
    with pytest.raises(Conflict):
        refund_split(100_01, paid, (0, 0))


@pytest.mark.parametrize(("amount", "bonus"), [(999_99, 0), (1000_00, 50_00), (2999_99, 50_00), (3000_00, 300_00)])
def test_the_best_top_up_offer_reached_gives_its_bonus(amount, bonus):
    offers = (TopUpOffer(1000_00, 50_00), TopUpOffer(3000_00, 300_00))
    assert top_up_bonus(offers, amount) == bonus
