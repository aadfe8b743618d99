"""Appointments as notifications sees them: confirmation and reminders follow the booking as it changes.

Events about one appointment can arrive out of order (a handler retried, a replica slower): each change
is applied only if it is newer than the last one seen (``occurred_at``), and a cancelled appointment
stays cancelled, so a late ``appointment_booked`` never revives reminders for a cancelled visit.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.kit.clock import as_utc, isoformat
from services.kit.db import dialect_insert
from services.notifications import deliveries
from services.notifications.models import Appointment
from services.notifications.rules.journeys import appointment_messages
from services.notifications.settings import Settings

BOOKED, CANCELLED = "booked", "cancelled"


def _occurred(event: dict[str, Any], now: datetime) -> datetime:
    """When records says the change happened (the envelope's ``occurred_at``; now if a producer sent none)."""
    return event["occurred_at"] or as_utc(now)


def _current(session: Session, first: dict[str, Any]) -> tuple[Appointment, bool, bool]:
    """The appointment row, locked; whether this event made it (its first event: the row is ``first``); and
    whether it is news (newer than the last event seen, and not after a cancellation).

    The first event inserts the row with ``INSERT .. ON CONFLICT DO NOTHING``: when a booking and its
    cancellation arrive at the same moment, one inserts and the other waits for it and then reads its row,
    instead of both inserting and one failing on the primary key."""
    made = session.execute(dialect_insert(session, Appointment).values(**first)
                           .on_conflict_do_nothing(index_elements=["appointment_id"])
                           .returning(Appointment.appointment_id)).scalar() is not None
    row = session.get(Appointment, first["appointment_id"], with_for_update=True, populate_existing=True)
    if made:
        return row, True, True
    return row, False, not (row.status == CANCELLED or row.last_event_at > first["last_event_at"])


def booked(session: Session, event: dict[str, Any], now: datetime, settings: Settings, rescheduled: bool = False) -> int:
    """Record a booking (or a new time) and queue its confirmation and reminders; returns how many.

    ``event``: ``appointment_booked``, or ``appointment_rescheduled`` (``rescheduled``), in domain values.
    """
    starts_at, occurred = event["starts_at"], _occurred(event, now)
    row, made, news = _current(session, {
        "appointment_id": str(event["appointment_id"]), "member_id": event["member_id"], "branch": event["branch"],
        "starts_at": starts_at, "status": BOOKED, "last_event_at": occurred,
        # appointment_rescheduled does not repeat the service category: what we learnt at booking
        "service_category": None if rescheduled else event["service_category"]})
    if not news:
        return 0
    if rescheduled:
        event = {**event, "service_category": row.service_category}
    if not made:
        if rescheduled and row.starts_at != starts_at:
            deliveries.cancel_queued(session, now, f"appointment moved to {isoformat(starts_at)}",
                                     cause_ref=f"appointment:{row.appointment_id}")
        row.starts_at, row.branch, row.status = starts_at, event["branch"], BOOKED
        row.last_event_at, row.service_category = occurred, event["service_category"]
    # a booked visit is what a recall asks for: its queued messages are held back (``recalls.hold_for_booking``)
    queued = 0
    for plan in appointment_messages(event, now, settings, rescheduled=rescheduled):
        if deliveries.queue(session, plan, now) is not None:
            queued += 1
    return queued


def booked_ahead(session: Session, appointment_id: str, now: datetime) -> Appointment | None:
    """The appointment if it is (still) booked and ahead."""
    row = session.get(Appointment, appointment_id)
    return row if row is not None and row.status == BOOKED and as_utc(row.starts_at) > as_utc(now) else None


def cancelled(session: Session, event: dict[str, Any], now: datetime) -> int:
    """Mark the appointment cancelled and take back its confirmation and reminders not yet sent."""
    occurred = _occurred(event, now)
    row, made, news = _current(session, {
        "appointment_id": str(event["appointment_id"]), "member_id": event["member_id"], "branch": event["branch"],
        "starts_at": event["starts_at"], "status": CANCELLED, "last_event_at": occurred})
    if news and not made:
        row.status, row.last_event_at = CANCELLED, occurred
    return deliveries.cancel_queued(session, now, "appointment cancelled",
                                    cause_ref=f"appointment:{event['appointment_id']}")


def future_by_member(session: Session, member_ids: list[uuid.UUID], now: datetime) -> dict[uuid.UUID, datetime]:
    """The start of each member's latest booked appointment still ahead (members without one are absent)."""
    if not member_ids:
        return {}
    query = (select(Appointment.member_id, func.max(Appointment.starts_at))
             .where(Appointment.member_id.in_(member_ids), Appointment.status == BOOKED,
                    Appointment.starts_at > as_utc(now))
             .group_by(Appointment.member_id))
    return {member: as_utc(starts) for member, starts in session.execute(query)}
