"""Follow-up task queues: tasks written once per fact (dedupe key), worked per branch and queue with
the overdue first, and the daily scan that finds patients who never came or whose treatment stopped.
The rules (which task, whose queue, when due) are in ``rules/followups.py``."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, Uuid, select
from sqlalchemy.orm import Session

from services.kit.caller import Identity
from services.kit.commit import AtCommit, at_commit
from services.kit.db import dialect_insert, fetch
from services.kit.errors import Invalid
from services.kit.models import UtcDateTime
from services.kit.paging import keyset_page
from services.kit.telemetry import counter
from services.records.models import Appointment, FollowUp, Patient
from services.records.rules import followups
from services.records.rules.followups import Task
from services.records.rules.practice import Practice

FOLLOW_UPS = counter("careloop_records_follow_ups_created_total", "Follow-up tasks created", ("state",))

SCAN_BATCH = 500
SCAN_WINDOW_DAYS = 30  # a state that began longer ago was seen by earlier scans (or a missed day caught up)


def create(session: Session, tasks: list[Task], member_id: uuid.UUID, branch: str, now: datetime,
           source_visit_id: uuid.UUID | None = None) -> int:
    """Write ``tasks`` (those whose dedupe key is new); how many were new."""
    if not tasks:
        return 0
    insert = dialect_insert(session, FollowUp)
    written = 0
    for task in tasks:
        result = session.execute(insert.values(
            id=uuid.uuid4(), member_id=member_id, branch=branch, state=task.state, queue=task.queue,
            due_on=task.due_on, status="open", attempts=0, source_visit_id=source_visit_id,
            dedupe_key=task.dedupe_key, created_at=now, updated_at=now, notes=task.note,
        ).on_conflict_do_nothing(index_elements=["dedupe_key"]))
        written += result.rowcount or 0
    return written


_CREATE = AtCommit(
    "INSERT INTO follow_ups (id, member_id, branch, state, queue, due_on, status, attempts, source_visit_id, "
    "dedupe_key, created_at, updated_at) VALUES (:id, :member_id, :branch, :state, :queue, :due_on, 'open', 0, "
    ":source_visit_id, :dedupe_key, :now, :now) ON CONFLICT (dedupe_key) DO NOTHING",
    prepare=True, id=Uuid(), member_id=Uuid(), source_visit_id=Uuid(), due_on=Date(), now=UtcDateTime())


def create_at_commit(session: Session, tasks: list[Task], member_id: uuid.UUID, branch: str, now: datetime,
                     source_visit_id: uuid.UUID | None = None) -> None:
    """``create``, written with the commit (``kit.commit``: on PostgreSQL in the query that commits): for a
    command that does not read the tasks back. Tasks without a note (a note is encrypted: ``create``)."""
    for task in tasks:
        if task.note is not None:
            raise ValueError("a task with a note is written by create()")
        at_commit(session, _CREATE, {
            "id": uuid.uuid4(), "member_id": member_id, "branch": branch, "state": task.state, "queue": task.queue,
            "due_on": task.due_on, "source_visit_id": source_visit_id, "dedupe_key": task.dedupe_key, "now": now})


_CANCELS: dict[tuple[str, ...], AtCommit] = {}


def cancel_open_at_commit(session: Session, member_id: uuid.UUID, states: tuple[str, ...], now: datetime) -> None:
    """``cancel_open`` as one UPDATE written with the commit (before anything added after it, such as the new
    tasks of the same command): nothing reads the tasks back. A task closed at the desk meanwhile stays as the
    desk left it (the UPDATE looks at the status again once it has the row)."""
    statement = _CANCELS.get(states)
    if statement is None:  # built once per set of states (code constants, never input)
        if not all(state.isidentifier() for state in states):
            raise ValueError(f"not a task state: {states!r}")
        listed = ", ".join(f"'{state}'" for state in states)
        statement = _CANCELS[states] = AtCommit(
            "UPDATE follow_ups SET status = 'cancelled', outcome = NULL, closed_at = :now, updated_at = :now, "
            f"closed_by = 'records' WHERE member_id = :member_id AND status = 'open' AND state IN ({listed})",
            prepare=True, member_id=Uuid(), now=UtcDateTime())
    at_commit(session, statement, {"member_id": member_id, "now": now})


def cancel_open(session: Session, member_id: uuid.UUID, states: tuple[str, ...], now: datetime,
                keep_visit: uuid.UUID | None = None) -> int:
    """Close open tasks that a new fact made pointless (the patient came, the treatment went on)."""
    closed = 0
    for task in session.scalars(select(FollowUp).where(FollowUp.member_id == member_id, FollowUp.status == "open",
                                                       FollowUp.state.in_(states))):
        if keep_visit is not None and task.source_visit_id == keep_visit:
            continue
        task.status, task.outcome, task.closed_at, task.updated_at = "cancelled", None, now, now
        task.closed_by = "records"
        closed += 1
    return closed


def by_dedupe_key(session: Session, dedupe_key: str) -> FollowUp:
    return session.scalars(select(FollowUp).where(FollowUp.dedupe_key == dedupe_key)).one()


def get(session: Session, task_id: Any, lock: bool = False) -> FollowUp:
    return fetch(session, FollowUp, task_id, "follow-up task", lock=lock)


def queue(session: Session, branch: str, queues: tuple[str, ...], due_by: date | None, limit: int,
          cursor: str | None) -> tuple[list[FollowUp], str | None]:
    """Open tasks of a branch in the given queues, the longest overdue first."""
    query = select(FollowUp).where(FollowUp.branch == branch, FollowUp.status == "open", FollowUp.queue.in_(queues))
    if due_by is not None:
        query = query.where(FollowUp.due_on <= due_by)
    return keyset_page(session, query, FollowUp.due_on, FollowUp.id, limit, cursor)


def of_member(session: Session, member_id: uuid.UUID, open_only: bool = True, limit: int = 100) -> list[FollowUp]:
    """A member's tasks, the earliest due first."""
    query = select(FollowUp).where(FollowUp.member_id == member_id)
    if open_only:
        query = query.where(FollowUp.status == "open")
    return list(session.scalars(query.order_by(FollowUp.due_on, FollowUp.id).limit(limit)))


def record_outcome(session: Session, task: FollowUp, data: dict[str, Any], today: date, caller: Identity,
                   now: datetime) -> None:
    """Note a call: done, or kept open for another try."""
    if task.status != "open":
        raise Invalid(f"This task is {task.status}; its outcome was recorded already.",
                      {"outcome": ["The task is closed."]})
    if data.get("next_appointment_id") is not None:
        appointment = session.get(Appointment, data["next_appointment_id"])
        if appointment is None or appointment.member_id != task.member_id:
            raise Invalid("The next appointment named is not this member's.",
                          {"next_appointment_id": ["Not this member's appointment."]})
        task.next_appointment_id = appointment.id
    status, due_on = followups.outcome_effect(data["outcome"], data.get("retry_on"), today)
    task.outcome, task.attempts, task.updated_at = data["outcome"], task.attempts + 1, now
    if data.get("notes") is not None:
        task.notes = data["notes"]
    task.status = status
    if due_on is not None:
        task.due_on = due_on
    else:
        task.closed_at, task.closed_by = now, caller.subject[:80]


def scan_step(session: Session, cursor: Any, today: date, now: datetime, practice: Practice) -> tuple[Any, int]:
    """One batch of the daily scan (``kit.jobs.run_batches`` step): patients by id after ``cursor``."""
    never_came_by = today - timedelta(days=practice.never_came_after_days)
    interrupted_by = today - timedelta(days=practice.interrupted_after_days)
    window = timedelta(days=SCAN_WINDOW_DAYS)
    query = select(Patient).where(
        Patient.membership_status == "active",  # no calls to a closed or frozen membership, nor a merged id
        (Patient.first_arrived_at.is_(None) & Patient.enrolled_on.between(never_came_by - window, never_came_by))
        | ((Patient.treatment == "ongoing") & Patient.last_visit_on.between(interrupted_by - window, interrupted_by))
    ).order_by(Patient.member_id).limit(SCAN_BATCH)
    if cursor is not None:
        query = query.where(Patient.member_id > uuid.UUID(cursor))
    batch = list(session.scalars(query))
    if not batch:
        return None, 0
    waiting = set(session.scalars(select(Appointment.member_id).where(
        Appointment.member_id.in_([p.member_id for p in batch]), Appointment.status == "booked",
        Appointment.starts_at >= now)))
    written = 0
    for patient in batch:
        state = followups.PatientState(
            member_id=str(patient.member_id), enrolled_on=patient.enrolled_on,
            has_arrived=patient.first_arrived_at is not None, treatment=patient.treatment,
            last_visit_id=str(patient.last_visit_id) if patient.last_visit_id else None,
            last_visit_on=patient.last_visit_on, has_future_appointment=patient.member_id in waiting)
        tasks = followups.from_state(state, today, practice)
        written += create(session, tasks, patient.member_id, patient.home_branch or "", now,
                          source_visit_id=patient.last_visit_id)
    next_cursor = str(batch[-1].member_id) if len(batch) == SCAN_BATCH else None
    return next_cursor, len(batch)

