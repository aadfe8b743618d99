"""Lots: expiry dates, the order points are spent in, what a reversal takes, when a lot is warned of,
what a reversed merge takes back and owes."""

from datetime import date

import pytest

from services.points.rules.lots import (
    Lot,
    expiry_date,
    is_expired,
    preferred_takes,
    reversal_takes,
    spending_order,
    still_owed,
    take,
    warning_due,
)


@pytest.mark.parametrize(("earned", "years", "expires"), [
    (date(2026, 1, 1), 1, date(2027, 12, 31)),
    (date(2026, 12, 31), 1, date(2027, 12, 31)),
    (date(2027, 1, 1), 1, date(2028, 12, 31)),
    (date(2026, 6, 15), 0, date(2026, 12, 31)),
    (date(2024, 2, 29), 2, date(2026, 12, 31)),
])
def test_a_lot_expires_at_the_end_of_the_year_after_it_was_earned(earned, years, expires):
    assert expiry_date(earned, years) == expires


@pytest.mark.parametrize(("today", "expired"), [
    (date(2026, 12, 30), False), (date(2026, 12, 31), False), (date(2027, 1, 1), True),
])
def test_a_lot_is_spendable_through_its_last_day(today, expired):
    assert is_expired(date(2026, 12, 31), today) is expired
    assert is_expired(None, today) is False  # the debt lot never expires


@pytest.mark.parametrize(("today", "due"), [
    (date(2026, 11, 30), False), (date(2026, 12, 1), True), (date(2026, 12, 31), True), (date(2027, 1, 1), False),
])
def test_a_lot_is_announced_within_thirty_days_of_expiring(today, due):
    assert warning_due(date(2026, 12, 31), today, 30) is due


LOTS = [Lot(3, 50, date(2027, 12, 31)), Lot(1, 100, date(2026, 12, 31)), Lot(2, 30, date(2026, 12, 31)),
        Lot(4, 0, date(2025, 12, 31)), Lot(5, -20, None)]


def test_spending_order_is_first_to_expire_then_oldest_and_skips_empty_lots():
    assert [lot.id for lot in spending_order(LOTS)] == [1, 2, 3]


@pytest.mark.parametrize(("points", "takes", "short"), [
    (0, [], 0),
    (1, [(1, 1)], 0),
    (100, [(1, 100)], 0),
    (101, [(1, 100), (2, 1)], 0),
    (130, [(1, 100), (2, 30)], 0),
    (180, [(1, 100), (2, 30), (3, 50)], 0),
    (200, [(1, 100), (2, 30), (3, 50)], 20),
])
def test_take_spends_the_lots_expiring_first(points, takes, short):
    assert take(LOTS, points) == (takes, short)


def test_a_reversal_takes_from_its_own_lot_first_then_the_others_then_debt():
    own = Lot(3, 10, date(2027, 12, 31))
    others = [Lot(1, 100, date(2026, 12, 31)), own]
    assert reversal_takes(own, others, 5) == ([(3, 5)], 0)
    assert reversal_takes(own, others, 50) == ([(3, 10), (1, 40)], 0)
    assert reversal_takes(own, others, 150) == ([(3, 10), (1, 100)], 40)
    spent = Lot(3, 0, date(2027, 12, 31))
    assert reversal_takes(spent, [spent], 30) == ([], 30)
    assert reversal_takes(None, [], 7) == ([], 7)


MOVED_IN = [Lot(10, 50, date(2027, 12, 31)), Lot(11, 200, date(2027, 6, 30))]
OWN = [Lot(1, 100, date(2026, 12, 31)), Lot(2, 300, date(2027, 12, 31))]


@pytest.mark.parametrize(("points", "takes", "debt"), [
    (150, [(11, 150)], 0),  # the moved lots first, the first to expire first
    (250, [(11, 200), (10, 50)], 0),
    (300, [(11, 200), (10, 50), (1, 50)], 0),  # then the survivor's own lots, in spending order
    (700, [(11, 200), (10, 50), (1, 100), (2, 300)], 50),  # then debt
])
def test_a_reversed_merge_takes_from_the_lots_it_opened_first_then_the_survivor_s_then_debt(points, takes, debt):
    assert preferred_takes(MOVED_IN, MOVED_IN + OWN, points) == (takes, debt)


def test_a_reversed_merge_whose_lots_were_spent_takes_from_the_survivor_s_lots():
    assert preferred_takes([], OWN, 120) == ([(1, 100), (2, 20)], 0)


@pytest.mark.parametrize(("moved", "expired", "owed"), [(500, 0, 500), (500, 200, 300), (500, 500, 0), (500, 600, 0)])
def test_a_reversed_merge_owes_back_what_it_moved_less_what_expired_since(moved, expired, owed):
    assert still_owed(moved, expired) == owed
