"""Which appointment a sending facility's appointment id (SCH-1) was booked as: written by an SIU^S12, read by
its S15. The booking itself is records' (its horizon and double-booking rules decide)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.interfaces.models import Hl7Appointment


def booked_as(session: Session, facility: str, placer_id: str) -> uuid.UUID | None:
    return session.scalar(select(Hl7Appointment.appointment_id).where(
        Hl7Appointment.facility == facility, Hl7Appointment.placer_id == placer_id))


def remember(session: Session, facility: str, placer_id: str, appointment_id: str, now: datetime) -> None:
    session.add(Hl7Appointment(facility=facility, placer_id=placer_id, appointment_id=uuid.UUID(appointment_id),
                               booked_at=now))
