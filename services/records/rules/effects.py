"""What a completed visit's bill should have done elsewhere, and what went wrong: the rules of the
cross-service visit audit. No I/O: a bill (records' own figures), what points says it made of the visit and
what members says the visit contributed, in; findings with a reason, out.

Only what is certainly wrong is reported. Points states its own expectation (its rules decide what a bill
earns: non-members, zero amounts and excluded items legitimately earn nothing, so the audit never judges
the earn itself), and it computes the reversal due for the refunds records reports. What the audit checks:
points saw the completion and every refund, posted what it said it would, once, and took back what the
refunds make due; members counted the visit's qualifying spend and took its refunds back out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

KINDS = {
    "points_not_seen": "completed but not seen by points",
    "not_earned": "completed but not earned",
    "earned_twice": "earned twice",
    "earned_unexpectedly": "earned though points noted nothing due",
    "refund_not_seen": "refunded but the refund not seen by points",
    "not_reversed": "refunded but not reversed",
    "reversed_twice": "reversed more than the refunds make due",
    "spend_not_counted": "spend not counted",
    "spend_miscounted": "spend counted at another amount",
    "spend_not_removed": "spend not removed",
    "spend_removed_twice": "spend removed more than refunded",
}
"""Every kind of finding, with the reason it is reported under."""


@dataclass(frozen=True)
class Bill:
    """A completed visit as records holds it; money is the qualifying part (what points and tiers use)."""

    visit_id: str
    member_id: str
    qualifying_minor: int
    refunded_minor: int  # qualifying part refunded so far
    full: bool  # some refund was a full one
    refunds: int
    completed_at: datetime | None = None
    imported: bool = False  # brought over by an import: points never earned on it (its balance came as an opening)


@dataclass(frozen=True)
class PointsView:
    """Points' answer for one visit (``points.visit_effects``)."""

    seen: bool  # points noted the completion
    noting: bool  # points was noting completions when this visit completed (False: before its upgrade)
    state: str | None  # earned, nothing_due, member_not_active
    expected_points: int | None
    earned_points: int
    earn_postings: int
    reversed_points: int
    reversal_due: int  # for the refunds records reports
    refunds_seen: int
    refunded_minor_seen: int
    full_refund_seen: bool

    @classmethod
    def of(cls, answer: dict[str, Any]) -> PointsView:
        return cls(bool(answer["seen"]), bool(answer.get("noting", True)), answer.get("state"),
                   answer.get("expected_points"),
                   int(answer["earned_points"]), int(answer["earn_postings"]), int(answer["reversed_points"]),
                   int(answer["reversal_due"]), int(answer["refunds_seen"]), int(answer["refunded_minor_seen"]),
                   bool(answer["full_refund_seen"]))


@dataclass(frozen=True)
class MembersView:
    """Members' answer for one visit (``members.visit_activity``)."""

    known: bool
    completed: bool
    qualifying_minor: int
    refunded_minor: int
    fully_refunded: bool

    @classmethod
    def of(cls, answer: dict[str, Any]) -> MembersView:
        return cls(bool(answer["known"]), bool(answer["completed"]), int(answer["qualifying_minor"]),
                   int(answer["refunded_minor"]), bool(answer["fully_refunded"]))


@dataclass(frozen=True)
class Finding:
    kind: str
    expected: int | None = None
    found: int | None = None

    @property
    def reason(self) -> str:
        figures = f" (expected {self.expected}, found {self.found})" if self.expected is not None else ""
        return KINDS[self.kind] + figures


def points_findings(bill: Bill, points: PointsView) -> list[Finding]:
    """What is certainly wrong with the visit's points."""
    found: list[Finding] = []
    if not points.seen and points.earn_postings == 0:
        # no note and no earn: the completion never reached points (a visit earning nothing is noted too,
        # since points began noting)
        if bill.qualifying_minor > 0 and points.noting:
            found.append(Finding("points_not_seen"))
    elif points.seen and points.state == "earned" and points.expected_points is not None:
        if points.earned_points < points.expected_points:
            found.append(Finding("not_earned", points.expected_points, points.earned_points))
        elif points.earned_points > points.expected_points:
            found.append(Finding("earned_twice", points.expected_points, points.earned_points))
    elif points.seen and points.earned_points > 0:
        found.append(Finding("earned_unexpectedly", 0, points.earned_points))
    if points.refunds_seen < bill.refunds or points.refunded_minor_seen < bill.refunded_minor \
            or (bill.full and not points.full_refund_seen):
        found.append(Finding("refund_not_seen", bill.refunded_minor, points.refunded_minor_seen))
    if points.reversed_points < points.reversal_due:
        found.append(Finding("not_reversed", points.reversal_due, points.reversed_points))
    elif points.reversed_points > points.reversal_due:
        found.append(Finding("reversed_twice", points.reversal_due, points.reversed_points))
    return found


def members_findings(bill: Bill, members: MembersView) -> list[Finding]:
    """What is certainly wrong with the visit's tier spend and visit count."""
    if not members.completed:
        return [Finding("spend_not_counted", bill.qualifying_minor, 0)]
    found: list[Finding] = []
    if members.qualifying_minor != bill.qualifying_minor:
        found.append(Finding("spend_miscounted", bill.qualifying_minor, members.qualifying_minor))
    if members.refunded_minor < bill.refunded_minor or (bill.full and not members.fully_refunded):
        found.append(Finding("spend_not_removed", bill.refunded_minor, members.refunded_minor))
    elif members.refunded_minor > bill.refunded_minor:
        found.append(Finding("spend_removed_twice", bill.refunded_minor, members.refunded_minor))
    return found


def findings(bill: Bill, points: PointsView, members: MembersView | None) -> list[Finding]:
    """Every finding for one visit (members' part left out when members was not asked; points' part for an
    imported visit, which points is not told of)."""
    return (points_findings(bill, points) if not bill.imported else []) + (
        members_findings(bill, members) if members is not None else [])
