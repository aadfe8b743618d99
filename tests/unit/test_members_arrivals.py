"""What a handler adds to the 12-month sums it read (``arrivals.Window``): a fact counts only on a day inside the
window (both ends included), a visit by its kind, points as the tier rules count them."""

from datetime import date, timedelta

import pytest

from services.members.arrivals import Window
from services.members.rules.tiers import Activity, window

FIRST, LAST = window(date(2026, 12, 7))
KINDS = (("first", 1), ("return", 2), ("emergency", 0), ("free_clinic", 4), ("event", 0))
BEFORE = Window(FIRST, LAST, spend_minor=1_000, visits=KINDS, points=-50, top_up_minor=300)


@pytest.mark.parametrize(("day", "counts"), [
    (FIRST - timedelta(days=1), False), (FIRST, True), (LAST, True), (LAST + timedelta(days=1), False)])
def test_a_fact_counts_only_inside_the_window(day, counts):
    visited = BEFORE.with_visit(day, "return", 500).activity(("first", "return"))
    assert visited == Activity(spend_minor=1_500 if counts else 1_000, largest_top_up_minor=300, points=0,
                               visits=4 if counts else 3)
    assert BEFORE.with_points(day, "spend", 80).counted_points == (30 if counts else 0)


def test_a_visit_counts_by_its_kind_and_an_adjustment_earns_nothing():
    assert BEFORE.activity(("first", "return", "emergency")).visits == 3
    assert BEFORE.with_visit(LAST, "free_clinic", 0).activity(("first", "return", "emergency")).visits == 3
    assert BEFORE.with_visit(LAST, "free_clinic", 0).activity(("free_clinic",)).visits == 5
    assert BEFORE.with_points(LAST, "adjust", 5_000).counted_points == 0
    assert BEFORE.with_points(LAST, "visit", 60).counted_points == 10
