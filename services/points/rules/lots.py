"""Lots: points kept by when they expire. Which lots a spend, a reversal or an expiry touches. No I/O.

Every earn opens a lot that expires at the end of a calendar year (by default the year after the one
it was earned in, in the group's time zone). Spending takes the lots that expire first, so a member
never loses points that could have been spent. A reversal takes back from the lot its earning opened;
if those points were already spent, it takes from the member's other lots (in spending order), and
what is still missing becomes debt: one debt lot per account with a negative remaining. Later points
pay off the debt before they can be spent, so a debt lot and spendable lots are never open together,
and ``balance = sum of postings = sum of open lots`` holds at all times.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

NEVER = date.max


@dataclass(frozen=True)
class Lot:
    id: int
    remaining: int
    expires_on: date | None  # None: never (the debt lot)


Take = tuple[int, int]
"""(lot id, points taken from it)."""


def expiry_date(earned_on: date, years_after: int) -> date:
    """The last day a lot earned on ``earned_on`` (local date) can be spent."""
    return date(earned_on.year + years_after, 12, 31)


def spending_order(lots: Iterable[Lot]) -> list[Lot]:
    """Open positive lots, the first to expire first (then the oldest)."""
    return sorted((lot for lot in lots if lot.remaining > 0), key=lambda lot: (lot.expires_on or NEVER, lot.id))


def take(lots: Iterable[Lot], points: int) -> tuple[list[Take], int]:
    """Take ``points`` from ``lots`` in spending order; returns the takes and what could not be covered."""
    takes: list[Take] = []
    left = points
    for lot in spending_order(lots):
        if left <= 0:
            break
        taken = min(lot.remaining, left)
        takes.append((lot.id, taken))
        left -= taken
    return takes, left


def reversal_takes(own: Lot | None, others: Iterable[Lot], points: int) -> tuple[list[Take], int]:
    """Take back ``points``: from the earning's own lot first, then the other lots; returns the takes
    and the debt (what no lot could cover)."""
    takes: list[Take] = []
    left = points
    if own is not None and own.remaining > 0:
        taken = min(own.remaining, left)
        takes.append((own.id, taken))
        left -= taken
    rest, debt = take((lot for lot in others if own is None or lot.id != own.id), left)
    return takes + rest, debt


def preferred_takes(preferred: Iterable[Lot], others: Iterable[Lot], points: int) -> tuple[list[Take], int]:
    """Take ``points`` from the ``preferred`` lots first (in spending order), then from the other lots;
    returns the takes and the debt (what no lot could cover). A reversed merge takes back from the lots
    the merge opened before touching the survivor's own points."""
    preferred = list(preferred)
    first, left = take(preferred, points)
    chosen = {lot.id for lot in preferred}
    rest, debt = take((lot for lot in others if lot.id not in chosen), left)
    return first + rest, debt


def still_owed(moved: int, expired_since: int) -> int:
    """What a reversed merge owes back for a lot it moved: the points moved, less what expired on the
    survivor since (those would have expired on the duplicate's account too)."""
    return max(moved - max(expired_since, 0), 0)


def is_expired(expires_on: date | None, today: date) -> bool:
    """A lot is spendable through its expiry date and expired from the next local day."""
    return expires_on is not None and expires_on < today


def warning_due(expires_on: date | None, today: date, days_ahead: int) -> bool:
    """Whether a lot expiring on ``expires_on`` should be announced today (once, ``days_ahead`` before)."""
    return expires_on is not None and today <= expires_on <= today + timedelta(days=days_ahead)
