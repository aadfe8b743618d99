"""Dental charts: the current chart of a member (encrypted) and its history of changes."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.kit.caller import Identity
from services.kit.errors import Conflict, Invalid
from services.kit.paging import keyset_page
from services.records.models import ChartChange, DentalChart, Patient, Visit
from services.records.rules import fdi


def read(session: Session, member_id: uuid.UUID) -> DentalChart:
    """The member's chart (for ``DentalChartSchema``); an empty one, version 0, never stored, before the first."""
    return session.get(DentalChart, member_id) or DentalChart(member_id=member_id, teeth="{}", version=0)


def mark(session: Session, patient: Patient, marks: list[dict[str, Any]], visit_id: uuid.UUID | None,
         expected_version: int | None, caller: Identity, now: datetime) -> tuple[DentalChart, list[dict]]:
    """Apply the marks (all or none); the new chart and what changed."""
    chart = session.scalars(select(DentalChart).where(DentalChart.member_id == patient.member_id)
                            .with_for_update()).first()
    current = chart.version if chart else 0
    if expected_version is not None and expected_version != current:
        raise Conflict(f"The chart changed since you read it (version {current}, you had {expected_version}); "
                       "read it again and redo your marks.", details={"version": current})
    if visit_id is not None:
        visit = session.get(Visit, visit_id)
        if visit is None or visit.member_id != patient.member_id:
            raise Invalid("The visit named is not one of this member's.", {"visit_id": ["Not this member's visit."]})
    teeth, changes = fdi.apply_marks(json.loads(chart.teeth) if chart else {}, marks)
    if not changes:
        return chart or read(session, patient.member_id), []
    if chart is None:
        chart = DentalChart(member_id=patient.member_id, version=0)
        session.add(chart)
    chart.teeth = json.dumps(teeth, separators=(",", ":"))
    chart.version = current + 1
    chart.updated_at, chart.updated_by = now, caller.subject
    session.add(ChartChange(id=uuid.uuid4(), member_id=patient.member_id, version=chart.version,
                            changes=json.dumps(changes, separators=(",", ":")), visit_id=visit_id, changed_at=now,
                            changed_by=caller.subject, changed_by_role=caller.role))
    return chart, changes


def history(session: Session, member_id: uuid.UUID, limit: int, cursor: str | None) -> dict[str, Any]:  # a page
    """Every change to the chart, newest first: what changed, when, by whom, at which visit."""
    query = select(ChartChange).where(ChartChange.member_id == member_id)
    rows, next_cursor = keyset_page(session, query, ChartChange.changed_at, ChartChange.id, limit, cursor,
                                    descending=True)
    return {"items": rows, "next_cursor": next_cursor}
