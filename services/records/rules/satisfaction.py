"""Feedback: the five satisfaction levels, NPS, and when a complaint must have its first answer. No I/O."""

from __future__ import annotations

from datetime import datetime, timedelta

from services.records.events import FEEDBACK_KINDS, SATISFACTION_LEVELS
from services.records.rules.practice import Practice

LEVELS = SATISFACTION_LEVELS
SCORES = {level: score for score, level in enumerate(LEVELS, start=1)}  # 1 (very dissatisfied) .. 5
NEGATIVE_LEVELS = frozenset({"very_dissatisfied", "dissatisfied"})
KINDS = FEEDBACK_KINDS
CHANNELS = ("app", "sms", "wechat", "line", "phone", "desk", "web")
COMPLAINT_STATUSES = ("received", "responded", "resolved")


def score(level: str | None) -> int | None:
    return None if level is None else SCORES[level]


def nps_group(nps: int) -> str:
    """promoter (9–10), passive (7–8) or detractor (0–6)."""
    return "promoter" if nps >= 9 else "passive" if nps >= 7 else "detractor"


def response_due(submitted_at: datetime, urgent: bool, practice: Practice) -> datetime:
    """When a complaint must have its first answer: 30 minutes if urgent (default), else a working day."""
    if urgent:
        return submitted_at + timedelta(minutes=practice.urgent_response_minutes)
    return submitted_at + timedelta(hours=practice.complaint_response_hours)


def overdue(kind: str, first_response_at: datetime | None, response_due_at: datetime | None,
            now: datetime) -> bool:
    """A complaint not answered yet whose first answer was due before ``now``."""
    return kind == "complaint" and first_response_at is None and response_due_at is not None and response_due_at < now


def response_seconds(submitted_at: datetime, responded_at: datetime) -> int:
    return max(0, int((responded_at - submitted_at).total_seconds()))
