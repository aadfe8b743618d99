"""Care plans: a member's personalised oral-care plan per recall type (guidance, diet, prevention,
encrypted) and when the next recall falls due; visits that do what a recall is for reset it."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.kit.caller import Identity
from services.records.models import CarePlan, Patient
from services.records.rules import recalls

TEXTS = ("guidance", "diet", "prevention")


def of_member(session: Session, member_id: uuid.UUID) -> list[CarePlan]:
    return list(session.scalars(select(CarePlan).where(CarePlan.member_id == member_id)
                                .order_by(CarePlan.recall_type)))


def save(session: Session, patient: Patient, data: dict[str, Any], default_interval: int, today: date,
         caller: Identity, now: datetime) -> tuple[CarePlan, bool]:
    """Create or change the plan of ``data["recall_type"]``; (plan, whether its recall changed)."""
    plan = session.scalars(select(CarePlan).where(CarePlan.member_id == patient.member_id,
                                                  CarePlan.recall_type == data["recall_type"])
                           .with_for_update()).first()
    created = plan is None
    if plan is None:
        plan = CarePlan(id=uuid.uuid4(), member_id=patient.member_id, recall_type=data["recall_type"], version=0,
                        created_at=now, status="active")
        session.add(plan)
    before = (plan.recall_interval_months, plan.next_recall_on, plan.status)
    interval = data.get("recall_interval_months") or plan.recall_interval_months or default_interval
    if data.get("next_recall_on") is not None:
        next_on = data["next_recall_on"]
    elif created or interval != plan.recall_interval_months:
        next_on = recalls.next_recall(plan.last_reset_on or today, interval)
    else:
        next_on = plan.next_recall_on
    plan.branch = data["branch"]
    plan.recall_interval_months, plan.next_recall_on, plan.status = interval, next_on, data["status"]
    for name in TEXTS:
        if data.get(name) is not None:
            setattr(plan, name, data[name])
    plan.version += 1
    plan.updated_at, plan.updated_by = now, caller.subject[:80]
    return plan, created or before != (plan.recall_interval_months, plan.next_recall_on, plan.status)


def reset_by_visit(session: Session, member_id: uuid.UUID, categories: set[str], day: date,
                   now: datetime) -> list[CarePlan]:
    """Move the recalls a completed visit did the work of; the plans that moved."""
    moved = []
    for plan in session.scalars(select(CarePlan).where(CarePlan.member_id == member_id,
                                                       CarePlan.status == "active").with_for_update()):
        if recalls.resets(plan.recall_type, categories) and (plan.last_reset_on is None or day > plan.last_reset_on):
            plan.last_reset_on = day
            plan.next_recall_on = recalls.next_recall(day, plan.recall_interval_months)
            plan.updated_at = now
            moved.append(plan)
    return moved


def updated_event(plan: CarePlan) -> dict[str, Any]:
    """``care_plan_updated`` (services/records/events.py)."""
    return {"member_id": plan.member_id, "care_plan_id": plan.id, "recall_type": plan.recall_type,
            "recall_interval_months": plan.recall_interval_months, "next_recall_on": plan.next_recall_on,
            "status": plan.status}
