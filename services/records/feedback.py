"""Feedback: satisfaction surveys (one per visit) and complaints with their response deadline, first
answer and resolution. Comments, answers and resolutions are encrypted at rest. Rules: ``rules/satisfaction.py``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.kit.caller import Identity
from services.kit.clock import local_date
from services.kit.config import Group
from services.kit.db import fetch, unique_or
from services.kit.errors import Conflict, Invalid
from services.kit.paging import keyset_page
from services.kit.telemetry import counter
from services.records.models import Feedback, Patient, Visit
from services.records.rules import satisfaction
from services.records.rules.practice import Practice

FEEDBACK = counter("careloop_records_feedback_total", "Feedback received", ("branch", "kind"))


def submit(session: Session, patient: Patient, data: dict[str, Any], visit: Visit | None, group: Group,
           practice: Practice, now: datetime) -> Feedback:
    if visit is not None:
        if visit.member_id != patient.member_id:
            raise Invalid("The visit named is not this member's.", {"visit_id": ["Not this member's visit."]})
        if data["kind"] == "survey" and visit.status != "completed":
            raise Invalid("A survey answers for a completed visit.", {"visit_id": ["The visit is not completed."]})
    branch = visit.branch if visit is not None else data["branch"]
    group.branch(branch)
    complaint = data["kind"] == "complaint"
    row = Feedback(
        id=uuid.uuid4(), member_id=patient.member_id, visit_id=visit.id if visit else None, branch=branch,
        kind=data["kind"], channel=data["channel"], satisfaction=data.get("satisfaction"),
        score=satisfaction.score(data.get("satisfaction")), nps=data.get("nps"), comment=data.get("comment"),
        urgent=bool(data.get("urgent")), status="received" if complaint else "closed", submitted_at=now,
        submitted_on=local_date(now, group.zone),
        response_due_at=satisfaction.response_due(now, bool(data.get("urgent")), practice) if complaint else None,
    )
    with unique_or(session, Conflict("This visit already has its survey answer.",
                                     details={"visit_id": str(row.visit_id)})):
        session.add(row)
    return row


def get(session: Session, feedback_id: Any, lock: bool = False) -> Feedback:
    return fetch(session, Feedback, feedback_id, "feedback", lock=lock)


def _complaint(row: Feedback) -> None:
    if row.kind != "complaint":
        raise Invalid("Only complaints are answered and resolved.", {"feedback_id": ["Not a complaint."]})


def respond(row: Feedback, text: str, caller: Identity, now: datetime) -> bool:
    """Give a complaint its first answer (the clock stops here); later answers replace the text."""
    _complaint(row)
    if row.status == "resolved":
        raise Conflict("This complaint is resolved already.")
    first = row.first_response_at is None
    if first:
        row.first_response_at = now
        row.response_seconds = satisfaction.response_seconds(row.submitted_at, now)
        row.status = "responded"
    row.response, row.handled_by = text, caller.subject[:80]
    return first


def resolve(row: Feedback, text: str, caller: Identity, now: datetime) -> None:
    _complaint(row)
    if row.status == "resolved":
        raise Conflict("This complaint is resolved already.")
    if row.first_response_at is None:  # resolving is also answering
        respond(row, text, caller, now)
    row.status, row.resolution, row.resolved_at, row.handled_by = "resolved", text, now, caller.subject[:80]


def complaints(session: Session, branch: str, status: str | None, limit: int,
               cursor: str | None) -> tuple[list[Feedback], str | None]:
    """A branch's complaints, the nearest (or longest passed) response deadline first."""
    query = select(Feedback).where(Feedback.branch == branch, Feedback.kind == "complaint")
    query = query.where(Feedback.status == status) if status else query.where(Feedback.status != "resolved")
    return keyset_page(session, query, Feedback.response_due_at, Feedback.id, limit, cursor)


def submitted_event(row: Feedback) -> dict[str, Any]:
    return {"feedback_id": row.id, "member_id": row.member_id, "visit_id": row.visit_id, "branch": row.branch,
            "kind": row.kind, "satisfaction": row.satisfaction, "nps": row.nps, "urgent": row.urgent}
