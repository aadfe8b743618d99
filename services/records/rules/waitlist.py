"""The waitlist's rules: who is offered a cancelled slot, and whether an offer can still be taken. No I/O."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

# entries
WAITING, BOOKED, WITHDRAWN = "waiting", "booked", "withdrawn"
ENTRY_STATUSES = (WAITING, BOOKED, WITHDRAWN)
# offers
OPEN, ACCEPTED, GONE, LAPSED = "open", "accepted", "gone", "lapsed"
OFFER_STATUSES = (OPEN, ACCEPTED, GONE, LAPSED)


def choose(entries: Sequence[Any], doctor_id: str, how_many: int) -> list[Any]:
    """The first ``how_many`` entries (in the order given: oldest first) waiting for this doctor or any,
    one per patient."""
    chosen: list[Any] = []
    seen: set[Any] = set()
    for entry in entries:
        if len(chosen) >= how_many:
            break
        if entry.doctor_id not in (None, doctor_id) or entry.member_id in seen:
            continue
        chosen.append(entry)
        seen.add(entry.member_id)
    return chosen


def offerable(slot_day: date, today: date, horizon_days: int) -> bool:
    """Whether a freed slot on ``slot_day`` goes to the waitlist: from today up to the branch's horizon."""
    return 0 <= (slot_day - today).days <= horizon_days


def shown_status(status: str, expires_at: datetime, now: datetime) -> str:
    """An open offer past its time is lapsed (nobody needs to write that down)."""
    return LAPSED if status == OPEN and now >= expires_at else status


def refusal(status: str, expires_at: datetime, now: datetime) -> str | None:
    """Why an offer cannot be accepted now (None: it can)."""
    shown = shown_status(status, expires_at, now)
    if shown == GONE:
        return "Sorry, another waiting patient took this slot first."
    if shown == LAPSED:
        return "This offer has lapsed; the slot may be gone. Ask the front desk for another time."
    return None
