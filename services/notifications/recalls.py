"""Recalls: a member's next check-up of each type (from care plans), and the daily scan that writes.

``care_plan_updated`` sets when a recall is due; the first message goes ``recall_lead_days`` before,
then every ``recall_repeat_days``, at most ``recall_max_attempts`` times — after which the recall is
``exhausted`` and belongs to customer service's reactivation list (``reactivation``). A member with a booked
appointment ahead is not written to: the scan looks again the day after that appointment, and a message
queued before the patient booked is held back when it is due to go (``postpone``; it is not an attempt).
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, exists, select, update
from sqlalchemy.orm import Session

from services.kit.clock import as_utc, local_date
from services.kit.db import fetch
from services.kit.errors import Conflict
from services.notifications import appointments, deliveries
from services.notifications.models import QUEUED, Appointment, AudienceMember, Delivery, Preference, Recall
from services.notifications.rules.journeys import first_recall_attempt, next_recall_attempt, recall
from services.notifications.settings import Settings

ACTIVE, EXHAUSTED, CLOSED = "active", "exhausted", "closed"
MERGED = "merged"  # set aside by a merge because the survivor has a recall of that type (an unmerge reopens it)
SCAN_BATCH = 1000


def plan_updated(session: Session, event: dict[str, Any], today: date, now: datetime,
                 settings: Settings) -> Recall | None:
    """A care plan set (or moved) a recall: start its messages afresh from the new due date.

    ``event``: records' ``care_plan_updated`` in domain values. A closed plan (``status: closed``) stops its
    recall: nothing more is sent.
    """
    member_id, recall_type, due_on = event["member_id"], event["recall_type"], event["next_recall_on"]
    care_plan_id = str(event["care_plan_id"])
    occurred = event["occurred_at"] or now
    row = session.scalars(select(Recall).where(Recall.member_id == member_id, Recall.recall_type == recall_type)
                          .with_for_update()).first()
    if row is not None and row.last_event_at is not None and row.last_event_at > occurred:
        return row  # an older plan change arriving late: the newer one stands
    deliveries.cancel_queued(session, now, "the care plan changed the recall",
                             cause_ref=f"recall:{member_id}:{recall_type}")
    if row is None:
        row = Recall(member_id=member_id, recall_type=recall_type)
        session.add(row)
    row.last_event_at = occurred
    if event["status"] == "closed":
        row.care_plan_id, row.due_on, row.status, row.next_attempt_on, row.updated_at = \
            care_plan_id, due_on, CLOSED, None, now
        return row
    row.care_plan_id = care_plan_id
    row.due_on, row.attempts, row.status, row.updated_at = due_on, 0, ACTIVE, now
    row.next_attempt_on = first_recall_attempt(due_on, today, settings)
    return row


def scan_step(session: Session, day: date, now: datetime, settings: Settings, zone: ZoneInfo,
              store_is_postgresql: bool) -> tuple[int, int]:
    """One batch of the day's recall messages; returns (recalls looked at, messages queued)."""
    query = (select(Recall).where(Recall.status == ACTIVE, Recall.next_attempt_on <= day)
             .order_by(Recall.next_attempt_on, Recall.id).limit(SCAN_BATCH))
    if store_is_postgresql:
        query = query.with_for_update(skip_locked=True)
    rows = list(session.scalars(query))
    ahead = appointments.future_by_member(session, list({row.member_id for row in rows}), now)
    plans = []
    outcomes: dict[tuple[date | None, str], list[uuid.UUID]] = defaultdict(list)
    for row in rows:
        if row.member_id in ahead:
            row.next_attempt_on = local_date(ahead[row.member_id], zone) + timedelta(days=1)
            row.updated_at = now
            continue
        attempt = row.attempts + 1
        plans.append(recall(str(row.member_id), row.recall_type, row.due_on, attempt, day, now, settings, zone))
        following = next_recall_attempt(attempt, day, settings)
        outcomes[(following, ACTIVE if following is not None else EXHAUSTED)].append(row.id)
    # one statement per outcome instead of one per recall: the scan writes thousands of rows a day
    for (following, status), ids in outcomes.items():
        session.execute(update(Recall).where(Recall.id.in_(ids))
                        .values(attempts=Recall.attempts + 1, next_attempt_on=following, status=status,
                                updated_at=now).execution_options(synchronize_session=False))
    queued = deliveries.queue_many(session, plans, now)
    return len(rows), queued


def postpone(session: Session, member_id: uuid.UUID, recall_type: str, attempt: int, appointment_at: datetime,
             zone: ZoneInfo, now: datetime) -> None:
    """A recall message found the patient booked when it was due to go: it does not count as an attempt, and
    the recall looks again the day after that appointment (as the scan does)."""
    row = session.scalars(select(Recall).where(Recall.member_id == member_id, Recall.recall_type == recall_type)
                          .with_for_update()).first()
    if row is None or row.status not in (ACTIVE, EXHAUSTED) or row.attempts != attempt:
        return  # the care plan changed it since, or it was closed or merged: leave it as it is now
    row.attempts, row.status = attempt - 1, ACTIVE
    row.next_attempt_on, row.updated_at = local_date(appointment_at, zone) + timedelta(days=1), now


def hold_for_booking(session: Session, member_id: uuid.UUID, starts_at: datetime, zone: ZoneInfo,
                     now: datetime) -> int:
    """The patient booked: recall messages still queued are taken back, and not counted as attempts (each
    recall looks again the day after that visit); how many were taken back."""
    queued = list(session.scalars(select(Delivery).where(Delivery.member_id == member_id, Delivery.state == QUEUED,
                                                         Delivery.journey == "recall").with_for_update()))
    for delivery in queued:
        context = json.loads(delivery.context or "{}")
        postpone(session, member_id, str(context.get("recall_type")), int(context.get("attempt") or 0), starts_at,
                 zone, now)
    return deliveries.cancel_queued(session, now, "an appointment is booked", member_id=member_id,
                                    journeys=("recall",))


def close_member(session: Session, member_id: uuid.UUID, now: datetime) -> None:
    for row in session.scalars(select(Recall).where(Recall.member_id == member_id)):
        row.status, row.next_attempt_on, row.updated_at = CLOSED, None, now


def move(session: Session, from_id: uuid.UUID, to_id: uuid.UUID, now: datetime) -> None:
    """After a merge: recalls the survivor lacks move to it; the merged member's others are set aside."""
    kept = set(session.scalars(select(Recall.recall_type).where(Recall.member_id == to_id)))
    for row in session.scalars(select(Recall).where(Recall.member_id == from_id, Recall.status != CLOSED)):
        if row.recall_type in kept:
            row.status, row.next_attempt_on = MERGED, None
        else:
            row.member_id, row.merged_from = to_id, from_id
        row.updated_at = now


def move_back(session: Session, merged_id: uuid.UUID, survivor_id: uuid.UUID, today: date, now: datetime,
              settings: Settings) -> None:
    """An unmerge: what the merge moved goes back, what it set aside starts again."""
    for row in session.scalars(select(Recall).where(Recall.member_id == survivor_id, Recall.merged_from == merged_id)):
        row.member_id, row.merged_from, row.updated_at = merged_id, None, now
    for row in session.scalars(select(Recall).where(Recall.member_id == merged_id, Recall.status == MERGED)):
        row.status, row.updated_at = ACTIVE, now
        row.next_attempt_on = first_recall_attempt(row.due_on, today, settings)


# -- the reactivation list ---------------------------------------------------------------------------------

def reactivation(session: Session, branch: str, cap: int, now: datetime, limit: int = 200) -> list[Recall]:
    """Customer service's reactivation list of a branch (the members' home branch): recalls whose messages
    went unanswered, longest overdue first — without members who asked not to be contacted, who reached the
    contact cap, who have booked since, or whose membership is not active."""
    booked_ahead = exists().where(Appointment.member_id == Recall.member_id, Appointment.status == "booked",
                                  Appointment.starts_at > as_utc(now))
    no_contact = exists().where(Preference.member_id == Recall.member_id, Preference.do_not_contact.is_(True))
    query = (select(Recall)
             .join(AudienceMember, and_(AudienceMember.member_id == Recall.member_id,
                                        AudienceMember.home_branch == branch, AudienceMember.status == "active"))
             .where(Recall.status == EXHAUSTED, Recall.reactivation_contacts < cap, ~booked_ahead, ~no_contact)
             .order_by(Recall.due_on, Recall.id).limit(limit))
    return list(session.scalars(query))


def get(session: Session, recall_id: Any, lock: bool = False) -> Recall:
    return fetch(session, Recall, recall_id, "recall", lock=lock)


def record_contact(session: Session, row: Recall, cap: int, now: datetime) -> Recall:
    """Customer service called a member of the reactivation list: counted against the contact cap."""
    if row.status != EXHAUSTED:
        raise Conflict("This recall is not on the reactivation list (its messages are still going, or it is "
                       "closed).", details={"status": row.status})
    prefs = session.get(Preference, row.member_id)
    if prefs is not None and prefs.do_not_contact:
        raise Conflict("The member asked not to be contacted.")
    if row.reactivation_contacts >= cap:
        raise Conflict(f"The member was already contacted {row.reactivation_contacts} times (the cap is {cap}).",
                       details={"reactivation_contacts": row.reactivation_contacts, "cap": cap})
    row.reactivation_contacts += 1
    row.last_contacted_at, row.updated_at = now, now
    return row
