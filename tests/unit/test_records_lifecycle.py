"""Visit and appointment lifecycles, bills, refunds and the booking horizon."""

from datetime import date

import pytest

from services.kit.errors import Conflict, Invalid
from services.records.rules import lifecycle

ALLOWED = {
    ("booked", "arrived"), ("booked", "cancelled"), ("booked", "no_show"),
    ("arrived", "in_treatment"), ("arrived", "completed"), ("arrived", "cancelled"),
    ("in_treatment", "completed"),
}


@pytest.mark.parametrize("current", lifecycle.VISIT_STATUSES)
@pytest.mark.parametrize("target", lifecycle.VISIT_STATUSES)
def test_visit_transitions_follow_the_table(current, target):
    if current == target:
        assert lifecycle.visit_transition(current, target) is False  # a retry changes nothing
    elif (current, target) in ALLOWED:
        assert lifecycle.visit_transition(current, target) is True
    else:
        with pytest.raises(Conflict):
            lifecycle.visit_transition(current, target)


def test_refusals_say_where_a_visit_can_go():
    with pytest.raises(Conflict) as refused:
        lifecycle.visit_transition("in_treatment", "cancelled")
    assert "in treatment cannot become cancelled" in refused.value.message and "completed" in refused.value.message
    with pytest.raises(Conflict) as final:
        lifecycle.visit_transition("completed", "cancelled")
    assert "refund it instead" in final.value.message


@pytest.mark.parametrize(("current", "target", "outcome"), [
    ("booked", "checked_in", True), ("booked", "cancelled", True), ("booked", "no_show", True),
    ("cancelled", "cancelled", False), ("checked_in", "cancelled", Conflict), ("no_show", "checked_in", Conflict),
    ("cancelled", "booked", Conflict),
])
def test_appointment_transitions(current, target, outcome):
    if outcome is Conflict:
        with pytest.raises(Conflict):
            lifecycle.appointment_transition(current, target)
    else:
        assert lifecycle.appointment_transition(current, target) is outcome


def pay(*pairs):
    return [{"method": method, "amount_minor": amount} for method, amount in pairs]


@pytest.mark.parametrize(("payments", "qualifying"), [
    (pay(("cash", 100), ("card", 200), ("mobile", 300), ("insurance", 400), ("stored_value", 500)), 1500),
    (pay(("points", 100), ("coupon", 200), ("stored_value_bonus", 300)), 0),
    (pay(("card", 20000), ("points", 5000), ("coupon", 5000)), 20000),
    ([], 0),
])
def test_what_the_member_actually_paid(payments, qualifying):
    assert lifecycle.qualifying_minor(payments) == qualifying


def test_a_bill_must_add_up_in_the_group_currency():
    items = [{"category": "exam", "code": "E", "amount_minor": 10000}]
    totals = lifecycle.check_bill(items, pay(("card", 6000), ("points", 4000)), "CNY", "CNY")
    assert (totals.total_minor, totals.paid_minor, totals.qualifying_minor) == (10000, 10000, 6000)
    with pytest.raises(Invalid) as short:
        lifecycle.check_bill(items, pay(("card", 9999)), "CNY", "CNY")
    assert "payments" in short.value.fields and "9999" in short.value.message
    with pytest.raises(Invalid) as foreign:
        lifecycle.check_bill(items, pay(("card", 10000)), "USD", "CNY")
    assert "currency" in foreign.value.fields
    free = lifecycle.check_bill([{"category": "exam", "code": "FREE", "amount_minor": 0}], [], "CNY", "CNY")
    assert free.total_minor == 0


@pytest.mark.parametrize(("categories", "treatment"), [
    (["exam"], "none"), (["exam", "imaging"], "none"), (["products"], "none"), ([], "none"),
    (["exam", "treatment"], "finished"), (["cleaning"], "finished"), (["surgery"], "finished"),
])
def test_default_treatment_follows_the_items(categories, treatment):
    items = [{"category": c, "code": "X", "amount_minor": 1} for c in categories]
    assert lifecycle.default_treatment(items) == treatment


def test_outpatient_surgery_by_flag_or_by_item():
    surgery = [{"category": "surgery", "code": "EXT8", "amount_minor": 1}]
    assert lifecycle.is_outpatient_surgery(None, surgery) is True
    assert lifecycle.is_outpatient_surgery(False, surgery) is False
    assert lifecycle.is_outpatient_surgery(True, []) is True
    assert lifecycle.is_outpatient_surgery(None, []) is False


def test_refunds_are_checked_method_by_method_and_know_when_they_are_full():
    paid = {"card": 20000, "points": 5000, "coupon": 5000}
    partial = lifecycle.plan_refund(paid, {}, pay(("card", 5000), ("points", 5000)))
    assert (partial.total_minor, partial.qualifying_minor, partial.full) == (10000, 5000, False)
    rest = lifecycle.plan_refund(paid, {"card": 5000, "points": 5000}, pay(("card", 15000), ("coupon", 5000)))
    assert (rest.total_minor, rest.qualifying_minor, rest.full) == (20000, 15000, True)
    with pytest.raises(Invalid) as too_much:
        lifecycle.plan_refund(paid, {"card": 15000}, pay(("card", 6000)))
    assert too_much.value.fields["payments"]["card"].startswith("At most 5000")
    with pytest.raises(Invalid):
        lifecycle.plan_refund(paid, {}, pay(("cash", 1)))  # never paid in cash


@pytest.mark.parametrize(("slot_day", "horizon", "ok"), [
    (date(2026, 11, 23), 3, True), (date(2026, 11, 26), 3, True), (date(2026, 11, 27), 3, False),
    (date(2026, 11, 30), 7, True), (date(2026, 12, 1), 7, False), (date(2026, 11, 22), 7, False),
])
def test_the_booking_horizon_counts_days_from_today(slot_day, horizon, ok):
    today = date(2026, 11, 23)
    if ok:
        lifecycle.check_booking_day(slot_day, today, horizon, "gold")
    else:
        with pytest.raises(Invalid) as refused:
            lifecycle.check_booking_day(slot_day, today, horizon, "gold")
        assert "slot_id" in refused.value.fields
