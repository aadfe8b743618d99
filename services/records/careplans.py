"""Care plans: a member's personalised oral-care plan per recall type (guidance, diet, prevention,
encrypted) and when the next recall falls due; visits that do what a recall is for reset it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, Uuid, bindparam, select
from sqlalchemy.orm import Session

from services.kit.caller import Identity
from services.kit.commit import AtCommit, at_commit
from services.kit.models import UtcDateTime
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


@dataclass(frozen=True)
class Recall:
    """What a visit's reset reads and changes of a plan (not its encrypted texts)."""

    id: uuid.UUID
    member_id: uuid.UUID
    recall_type: str
    recall_interval_months: int
    last_reset_on: date | None
    next_recall_on: date
    status: str


RECALL_FIELDS = tuple(Recall.__dataclass_fields__)


def resettable(categories: set[str]) -> list[str]:
    """The recall types a visit with items of ``categories`` resets."""
    return sorted(recall_type for recall_type in recalls.RECALL_TYPES if recalls.resets(recall_type, categories))


def recalls_of(rows: list[dict[str, Any]]) -> list[Recall]:
    """``Recall``s from their JSON form (``RECALL_FIELDS``: a read that brings them with other rows)."""
    return [Recall(id=uuid.UUID(row["id"]), member_id=uuid.UUID(row["member_id"]), recall_type=row["recall_type"],
                   recall_interval_months=row["recall_interval_months"],
                   last_reset_on=date.fromisoformat(row["last_reset_on"]) if row["last_reset_on"] else None,
                   next_recall_on=date.fromisoformat(row["next_recall_on"]), status=row["status"]) for row in rows]


_RECALLS = (select(CarePlan.id, CarePlan.member_id, CarePlan.recall_type, CarePlan.recall_interval_months,
                   CarePlan.last_reset_on, CarePlan.next_recall_on, CarePlan.status)
            .where(CarePlan.member_id == bindparam("member"), CarePlan.status == "active",
                   CarePlan.recall_type.in_(bindparam("types", expanding=True)))
            .order_by(CarePlan.recall_type).with_for_update())
_RESET = AtCommit("UPDATE care_plans SET last_reset_on = :day, next_recall_on = :next_on, updated_at = :now "
                  "WHERE id = :id", id=Uuid(), day=Date(), next_on=Date(), now=UtcDateTime())


def reset_by_visit(session: Session, member_id: uuid.UUID, categories: set[str], day: date,
                   now: datetime, read: list[Recall] | None = None) -> list[Recall]:
    """Move the recalls a completed visit did the work of; the plans that moved (written with the commit).
    ``read``: the member's active plans of the types the visit resets, locked already (else read here; nothing is
    read for a visit whose categories reset no recall type)."""
    if read is None:
        types = resettable(categories)
        read = [Recall(**row._mapping) for row in session.execute(_RECALLS, {"member": member_id, "types": types})
                ] if types else []
    moved = []
    for plan in read:
        if plan.last_reset_on is None or day > plan.last_reset_on:
            plan = replace(plan, last_reset_on=day,
                           next_recall_on=recalls.next_recall(day, plan.recall_interval_months))
            at_commit(session, _RESET, {"id": plan.id, "day": day, "next_on": plan.next_recall_on, "now": now})
            moved.append(plan)
    return moved


def updated_event(plan: CarePlan | Recall) -> dict[str, Any]:
    """``care_plan_updated`` (services/records/events.py)."""
    return {"member_id": plan.member_id, "care_plan_id": plan.id, "recall_type": plan.recall_type,
            "recall_interval_months": plan.recall_interval_months, "next_recall_on": plan.next_recall_on,
            "status": plan.status}
