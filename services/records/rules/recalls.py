"""Care-plan recalls: recall types, their intervals, and when the next recall falls due. No I/O.

Each recall type is reset by the visits that do what it recalls for (a cleaning resets the cleaning
recall): a completed visit with an item of one of those categories moves the next recall to the
visit's day plus the interval.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from datetime import date

RECALL_TYPES: dict[str, frozenset[str]] = {
    "cleaning": frozenset({"cleaning"}),
    "exam": frozenset({"exam"}),
    "ortho_check": frozenset({"orthodontics"}),
    "implant_review": frozenset({"implant"}),
    "perio_maintenance": frozenset({"cleaning", "treatment"}),
    "custom": frozenset(),  # reset only by the clinician
}
"""Recall type -> the visit item categories that reset it."""

MAX_INTERVAL_MONTHS = 60


def add_months(day: date, months: int) -> date:
    """``day`` plus whole months; the 31st becomes the month's last day where the month is shorter."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def next_recall(last_on: date, interval_months: int) -> date:
    return add_months(last_on, interval_months)


def resets(recall_type: str, categories: Iterable[str]) -> bool:
    """Whether a visit with items of ``categories`` resets a recall of ``recall_type``."""
    return bool(RECALL_TYPES[recall_type] & set(categories))
