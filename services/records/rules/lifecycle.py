"""Visits and appointments: their status lifecycles, what a bill means and what a refund takes back. No I/O.

A visit (encounter) moves booked → arrived → in treatment → completed, or ends cancelled / no-show:

| from | to |
| --- | --- |
| booked | arrived, cancelled, no_show |
| arrived | in_treatment, completed (a consultation), cancelled (left before treatment) |
| in_treatment | completed |

A completed visit is final: money goes back with a refund, never by reopening it. Asking for the
status a visit already has changes nothing (a retried request is harmless). An appointment moves
booked → checked_in, cancelled or no_show.

Money is integer minor units. What the member *actually paid* (``qualifying_minor``, what counts for
tiers and spend points) is every payment except points, coupons and bonus stored value (SPEC).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from services.kit.errors import Conflict, Invalid
from services.records.events import ITEM_CATEGORIES, PAYMENT_METHODS, VISIT_KINDS  # noqa: F401 - the words on the wire

VISIT_STATUSES = ("booked", "arrived", "in_treatment", "completed", "cancelled", "no_show")
OPEN_STATUSES = ("booked", "arrived", "in_treatment")
FINAL_STATUSES = ("completed", "cancelled", "no_show")
VISIT_TRANSITIONS: dict[str, frozenset[str]] = {
    "booked": frozenset({"arrived", "cancelled", "no_show"}),
    "arrived": frozenset({"in_treatment", "completed", "cancelled"}),
    "in_treatment": frozenset({"completed"}),
    "completed": frozenset(),
    "cancelled": frozenset(),
    "no_show": frozenset(),
}

APPOINTMENT_STATUSES = ("booked", "checked_in", "cancelled", "no_show")
ACTIVE_APPOINTMENT_STATUSES = ("booked", "checked_in")  # the slot is taken
APPOINTMENT_TRANSITIONS: dict[str, frozenset[str]] = {
    "booked": frozenset({"checked_in", "cancelled", "no_show"}),
    "checked_in": frozenset(),
    "cancelled": frozenset(),
    "no_show": frozenset(),
}

TREATING_CATEGORIES = frozenset({"treatment", "cleaning", "implant", "orthodontics", "whitening", "surgery"})
NON_QUALIFYING_METHODS = frozenset({"points", "coupon", "stored_value_bonus"})
TREATMENTS = ("none", "ongoing", "finished")
"""Where the patient's treatment stands after a visit: not treated, a course under way, finished."""

_WORDS = {"in_treatment": "in treatment", "no_show": "no-show", "checked_in": "checked in"}


def _word(status: str) -> str:
    return _WORDS.get(status, status)


def visit_transition(current: str, target: str) -> bool:
    """True if the visit moves to ``target``; False if it is there already; ``Conflict`` if it may not."""
    if current == target:
        return False
    if target not in VISIT_TRANSITIONS[current]:
        allowed = sorted(VISIT_TRANSITIONS[current])
        hint = f" From {_word(current)} it can go to: {', '.join(map(_word, allowed))}." if allowed else (
            " A completed visit is final (refund it instead)." if current == "completed" else
            f" A {_word(current)} visit is final.")
        raise Conflict(f"A visit that is {_word(current)} cannot become {_word(target)}.{hint}")
    return True


def appointment_transition(current: str, target: str) -> bool:
    """As ``visit_transition``, for appointments."""
    if current == target:
        return False
    if target not in APPOINTMENT_TRANSITIONS[current]:
        raise Conflict(f"This appointment is {_word(current)}; it cannot become {_word(target)}.")
    return True


def qualifying_minor(payments: Iterable[dict[str, Any]]) -> int:
    """What the member actually paid: all payments except points, coupons and bonus stored value."""
    return sum(p["amount_minor"] for p in payments if p["method"] not in NON_QUALIFYING_METHODS)


@dataclass(frozen=True)
class BillTotals:
    total_minor: int
    paid_minor: int
    qualifying_minor: int


def check_bill(items: list[dict[str, Any]], payments: list[dict[str, Any]], currency: str,
               group_currency: str) -> BillTotals:
    """A bill's totals; ``Invalid`` unless the payments add up to the items, in the group's currency."""
    if currency != group_currency:
        raise Invalid(f"Amounts must be in {group_currency}, the group's currency.",
                      {"currency": [f"Must be {group_currency}."]})
    total = sum(item["amount_minor"] for item in items)
    paid = sum(payment["amount_minor"] for payment in payments)
    if paid != total:
        raise Invalid(f"The payments ({paid}) do not add up to the items ({total}), in minor units.",
                      {"payments": [f"Payments total {paid}; items total {total}."]})
    return BillTotals(total_minor=total, paid_minor=paid, qualifying_minor=qualifying_minor(payments))


def default_treatment(items: list[dict[str, Any]]) -> str:
    """When the bill does not say: treated (finished) if any item treats, else not treated."""
    return "finished" if any(item["category"] in TREATING_CATEGORIES for item in items) else "none"


def default_kind(has_arrived_before: bool) -> str:
    return "return" if has_arrived_before else "first"


def is_outpatient_surgery(flag: bool | None, items: list[dict[str, Any]]) -> bool:
    """Outpatient surgery if the bill says so, or (when it does not) if an item is surgery."""
    if flag is not None:
        return flag
    return any(item["category"] == "surgery" for item in items)


@dataclass(frozen=True)
class RefundOutcome:
    total_minor: int  # everything this refund gives back
    qualifying_minor: int  # the part of it the member had actually paid (taken out of spend)
    full: bool  # after it, nothing paid on the visit remains


def by_method(payments: Iterable[dict[str, Any]]) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for payment in payments:
        totals[payment["method"]] += payment["amount_minor"]
    return dict(totals)


def plan_refund(paid: dict[str, int], refunded: dict[str, int], requested: list[dict[str, Any]]) -> RefundOutcome:
    """Check a refund against what was paid and already refunded, method by method."""
    asked = by_method(requested)
    problems = {}
    for method, amount in asked.items():
        left = paid.get(method, 0) - refunded.get(method, 0)
        if amount > left:
            problems[method] = f"At most {left} can still be refunded by {method}; {amount} was asked."
    if problems:
        first = next(iter(problems.values()))
        raise Invalid(f"The refund is more than what was paid. {first}", {"payments": problems})
    total = sum(asked.values())
    if total <= 0:
        raise Invalid("A refund needs an amount.", {"payments": ["Refund at least one minor unit."]})
    remaining = sum(paid.values()) - sum(refunded.values()) - total
    return RefundOutcome(total_minor=total, qualifying_minor=qualifying_minor(requested), full=remaining == 0)


def check_booking_day(slot_day: date, today: date, horizon_days: int, tier: str) -> None:
    """A member books from today up to ``horizon_days`` ahead (their tier's booking horizon)."""
    if slot_day < today:
        raise Invalid("This slot is in the past.", {"slot_id": ["The slot has already started."]})
    ahead = (slot_day - today).days
    if ahead > horizon_days:
        raise Invalid(f"Members of the {tier} tier may book up to {horizon_days} days ahead; this slot is "
                      f"{ahead} days ahead ({slot_day.isoformat()}).",
                      {"slot_id": [f"Beyond the booking horizon of {horizon_days} days."]})
