"""What points made of a batch of visits, for the cross-service visit audit (records asks, in one call per
batch): the outcome noted with each visit's earn (``awards.note_visit``), what the ledger holds for it,
and what the programme's reversal rule says is due for the refunds records reports. Points states its own
expectation, so the audit never re-implements the earning rules. Three queries per batch, whatever its size.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.points import holds
from services.points.models import PointsPosting, VisitOutcome, VisitOutcomesSince, VisitRefund
from services.points.rules import earning

MAX_VISITS = 2000  # per call: the batch's ids go into IN lists


def effects(session: Session, visits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One answer per visit asked, in the same order. Each visit: ``visit_id``, what records says was
    refunded (``refunded_minor``: the qualifying part, and ``full``) and when it was completed
    (``completed_at``, optional); ``reversal_due`` applies the reversal rule to those figures, not to the
    refunds points happened to receive; ``noting`` says whether points was already noting outcomes when the
    visit completed (before that, a visit that earned nothing has no note, and that is no sign of a loss)."""
    ids = [str(visit["visit_id"]) for visit in visits]
    since = session.scalar(select(VisitOutcomesSince.since).where(VisitOutcomesSince.id == 1))
    outcomes = {row.visit_id: row for row in session.scalars(select(VisitOutcome).where(VisitOutcome.visit_id.in_(ids)))}
    earns: dict[str, list[Any]] = defaultdict(list)
    reversed_points: dict[str, int] = defaultdict(int)
    # a line locked in the refund window (holds.py) counts when locked: the hold is the line, the earn that
    # released it is not another one, and what a refund cancelled inside the window counts as reversed
    locked, cancelled, released = holds.of_visits(session, ids)
    postings = session.execute(
        select(PointsPosting.id, PointsPosting.source_ref, PointsPosting.kind, PointsPosting.points,
               PointsPosting.basis_minor)
        .where(PointsPosting.source == "visit", PointsPosting.source_ref.in_(ids),
               PointsPosting.kind.in_(("earn", "reverse"))))
    for posting_id, visit_id, kind, points, basis in postings:
        if kind == "earn" and posting_id not in released:
            earns[visit_id].append((points, basis))
        elif kind == "reverse":
            reversed_points[visit_id] += -points
    for visit_id, lines in locked.items():
        earns[visit_id].extend(lines)
        reversed_points[visit_id] += cancelled.get(visit_id, 0)
    refunds: dict[str, list[Any]] = defaultdict(list)
    for visit_id, refunded, full in session.execute(
            select(VisitRefund.visit_id, VisitRefund.refunded_minor, VisitRefund.full)
            .where(VisitRefund.visit_id.in_(ids))):
        refunds[visit_id].append((refunded, full))
    answers = []
    for visit, visit_id in zip(visits, ids, strict=True):
        outcome = outcomes.get(visit_id)
        refunded, full = int(visit.get("refunded_minor") or 0), bool(visit.get("full"))
        due = sum(earning.reversal_due(points, basis, refunded, full, 0) for points, basis in earns[visit_id])
        seen = refunds[visit_id]
        completed_at = visit.get("completed_at")
        answers.append({
            "visit_id": visit_id,
            "seen": outcome is not None,
            "noting": since is None or completed_at is None or completed_at >= since,
            "state": outcome.state if outcome is not None else None,
            "expected_points": outcome.earned_points if outcome is not None else None,
            "bill_minor": outcome.bill_minor if outcome is not None else None,
            "noted_reversed_points": outcome.reversed_points if outcome is not None else None,
            "earned_points": sum(points for points, _basis in earns[visit_id]),
            "earn_postings": len(earns[visit_id]),
            "reversed_points": reversed_points[visit_id],
            "reversal_due": due,
            "refunds_seen": len(seen),
            "refunded_minor_seen": sum(amount for amount, _full in seen),
            "full_refund_seen": any(full for _amount, full in seen),
        })
    return answers
