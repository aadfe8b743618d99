"""Doctors' slots and appointments.

A slot is a doctor's bookable time at a branch; an appointment takes a slot. That a slot is taken at
most once is the database's job: a unique index on the slot over live appointments (booked or checked
in), so of two bookings racing for one slot exactly one commits and the other is told 409 — there is
no "look, then insert" window. Each appointment has its visit, in status booked, that follows it
(checked in: arrived; cancelled; no-show).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Uuid, and_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.kit.caller import Identity
from services.kit.clock import isoformat, local_date
from services.kit.commit import AtCommit, at_commit
from services.kit.config import Group
from services.kit.db import fetch, unique_or
from services.kit.errors import Conflict, Invalid, NotFound
from services.kit.models import UtcDateTime
from services.kit.schemas import With
from services.kit.telemetry import counter
from services.records import patients, visits
from services.records.models import Appointment, Patient, Slot, Visit
from services.records.rules import lifecycle

BOOKED = counter("careloop_records_appointments_booked_total", "Appointments booked", ("branch",))

ACTIVE = lifecycle.ACTIVE_APPOINTMENT_STATUSES


def _id(value: Any, what: str) -> uuid.UUID:
    return visits.parse_id(value, what)


def publish(session: Session, data: dict[str, Any], group: Group, today: date, now: datetime) -> list[Slot]:
    """Cut a doctor's hours on a day into slots; slots published before are kept (publishing twice is
    harmless); a slot overlapping another of the doctor's, at any branch, is refused."""
    group.branch(data["branch"])
    if data["on"] < today:
        raise Invalid("That day is over.", {"on": ["Must be today or later."]})
    step = timedelta(minutes=data["slot_minutes"])
    start = datetime.combine(data["on"], data["start"], tzinfo=group.zone)
    end = datetime.combine(data["on"], data["end"], tzinfo=group.zone)
    wanted = []
    while start + step <= end:
        wanted.append((start.astimezone(UTC), (start + step).astimezone(UTC)))
        start += step
    if not wanted:
        raise Invalid("The hours are shorter than one slot.", {"slot_minutes": ["Longer than the hours given."]})
    existing = list(session.scalars(select(Slot).where(
        Slot.doctor_id == data["doctor_id"], Slot.starts_at < wanted[-1][1], Slot.ends_at > wanted[0][0])))
    result = []
    for starts_at, ends_at in wanted:
        same = next((s for s in existing if s.starts_at == starts_at and s.ends_at == ends_at
                     and s.branch == data["branch"]), None)
        if same is not None:
            result.append(same)
            continue
        clash = next((s for s in existing if s.starts_at < ends_at and s.ends_at > starts_at), None)
        if clash is not None:
            raise Conflict(f"Doctor {data['doctor_id']} already has a slot from {isoformat(clash.starts_at)} at "
                           f"{clash.branch} that overlaps these hours.", details={"slot_id": str(clash.id)})
        slot = Slot(id=uuid.uuid4(), branch=data["branch"], doctor_id=data["doctor_id"], starts_at=starts_at,
                    ends_at=ends_at, local_day=data["on"], created_at=now)
        session.add(slot)
        result.append(slot)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict("These slots were being published by someone else at the same moment; look again.") from None
    return result


def slot(session: Session, slot_id: Any) -> Slot:
    found = session.get(Slot, _id(slot_id, "slot"))
    if found is None:
        raise NotFound(f"No slot {slot_id}.")
    return found


def slots(session: Session, branch: str, on: date, doctor_id: str | None, free_only: bool) -> list[With]:
    """A branch's slots on a day, each with whether it is free (for ``SlotSchema``)."""
    query = (select(Slot, Appointment.id)
             .outerjoin(Appointment, and_(Appointment.slot_id == Slot.id, Appointment.status.in_(ACTIVE)))
             .where(Slot.branch == branch, Slot.local_day == on).order_by(Slot.starts_at, Slot.doctor_id))
    if doctor_id:
        query = query.where(Slot.doctor_id == doctor_id)
    found = []
    for row, taken_by in session.execute(query):
        if free_only and taken_by is not None:
            continue
        found.append(With(row, free=taken_by is None))
    return found


def _check_member_free(session: Session, member_id: uuid.UUID, starts_at: datetime, ends_at: datetime,
                       other_than: uuid.UUID | None = None) -> None:
    query = select(Appointment).where(Appointment.member_id == member_id, Appointment.status.in_(ACTIVE),
                                      Appointment.starts_at < ends_at, Appointment.ends_at > starts_at)
    if other_than is not None:
        query = query.where(Appointment.id != other_than)
    clash = session.scalars(query.limit(1)).first()
    if clash is not None:
        raise Conflict(f"The member already has an appointment then (with {clash.doctor_id} at {clash.branch}).",
                       details={"appointment_id": str(clash.id)})


def _take(session: Session, appointment: Appointment) -> None:
    """Write the appointment's hold on its slot; the unique index refuses a slot already taken."""
    with unique_or(session, _taken(appointment.slot_id)):
        session.add(appointment)


def _taken(slot_id: uuid.UUID) -> Conflict:
    return Conflict("This slot has just been taken; choose another.", details={"slot_id": str(slot_id)})


def book(session: Session, patient: Patient, chosen: Slot, category: str, group: Group, caller: Identity,
         now: datetime) -> Appointment:
    _check_member_free(session, patient.member_id, chosen.starts_at, chosen.ends_at)
    appointment = Appointment(
        id=uuid.uuid4(), member_id=patient.member_id, slot_id=chosen.id, branch=chosen.branch,
        doctor_id=chosen.doctor_id, starts_at=chosen.starts_at, ends_at=chosen.ends_at, service_category=category,
        status="booked", created_at=now, created_by=caller.subject[:80], updated_at=now)
    _take(session, appointment)
    visit = visits.new_visit(patient, chosen.branch, chosen.doctor_id, None, now, scheduled_at=chosen.starts_at,
                             appointment_id=appointment.id)
    visit.currency = group.currency
    session.add(visit)
    appointment.visit_id = visit.id
    return appointment


def get(session: Session, appointment_id: Any, lock: bool = False) -> Appointment:
    return fetch(session, Appointment, appointment_id, "appointment", lock=lock)


def lock_with_patient(session: Session, appointment_id: Any) -> tuple[Appointment, Patient | None]:
    """The appointment and its patient, both locked, the patient first (``patients.lock_with_patient``)."""
    return patients.lock_with_patient(session, Appointment, appointment_id, "appointment")


def _visit(session: Session, appointment: Appointment) -> Visit | None:
    return session.get(Visit, appointment.visit_id) if appointment.visit_id else None


def reschedule(session: Session, appointment: Appointment, chosen: Slot, now: datetime) -> datetime | None:
    """Move a booked appointment to another slot; the previous start (None if it was there already)."""
    if appointment.slot_id == chosen.id:
        return None
    if appointment.status != "booked":
        raise Conflict(f"Only a booked appointment can be moved; this one is {appointment.status.replace('_', ' ')}.")
    _check_member_free(session, appointment.member_id, chosen.starts_at, chosen.ends_at, other_than=appointment.id)
    previous = appointment.starts_at
    with unique_or(session, _taken(chosen.id)):  # the change inside the savepoint: a taken slot undoes only it
        appointment.slot_id, appointment.branch, appointment.doctor_id = chosen.id, chosen.branch, chosen.doctor_id
        appointment.starts_at, appointment.ends_at, appointment.updated_at = chosen.starts_at, chosen.ends_at, now
    visit = _visit(session, appointment)
    if visit is not None and visit.status == "booked":
        visit.branch, visit.doctor_id, visit.scheduled_at, visit.visit_at = (
            chosen.branch, chosen.doctor_id, chosen.starts_at, chosen.starts_at)
        visit.updated_at = now
    return previous


def move(session: Session, appointment: Appointment, patient: Patient, target: str, group: Group, now: datetime,
         reason: str | None = None) -> tuple[bool, Visit | None]:
    """Check in, cancel or mark a no-show; (whether the appointment changed, its visit if that changed)."""
    if not lifecycle.appointment_transition(appointment.status, target):
        return False, None
    if target == "no_show" and now < appointment.starts_at:
        raise Conflict("The appointment has not started yet; it cannot be a no-show.")
    appointment.status, appointment.updated_at = target, now
    if target == "cancelled":
        appointment.cancel_reason = reason
    visit = _visit(session, appointment)
    visit_target = {"checked_in": "arrived", "cancelled": "cancelled", "no_show": "no_show"}[target]
    if visit is not None and visits.advance(visit, patient, visit_target, group, now):
        return True, visit
    return True, None


def follow_visit(session: Session, visit: Visit, now: datetime) -> Appointment | None:
    """Keep a visit's appointment in step when the visit moves at the desk; the appointment if it changed."""
    if visit.appointment_id is None:
        return None
    appointment = session.get(Appointment, visit.appointment_id)
    target = {"arrived": "checked_in", "completed": "checked_in", "cancelled": "cancelled",
              "no_show": "no_show"}.get(visit.status)
    if appointment is None or target is None or appointment.status == target:
        return None
    if target not in lifecycle.APPOINTMENT_TRANSITIONS[appointment.status]:
        return None
    appointment.status, appointment.updated_at = target, now
    if target == "cancelled":
        appointment.cancel_reason = "visit cancelled"
    return appointment


_CHECK_IN = AtCommit("UPDATE appointments SET status = 'checked_in', updated_at = :now "
                     "WHERE id = :id AND status = 'booked'", id=Uuid(), now=UtcDateTime())


def check_in_with_visit(session: Session, visit: Visit, now: datetime) -> None:
    """A visit completed: its appointment, if still booked, is checked in (``follow_visit`` for a completion,
    written with the commit: the completion reads the appointment no further)."""
    if visit.appointment_id is not None:
        at_commit(session, _CHECK_IN, {"id": visit.appointment_id, "now": now})


def of_member(session: Session, member_id: uuid.UUID, limit: int = 100) -> list[Appointment]:
    return list(session.scalars(select(Appointment).where(Appointment.member_id == member_id)
                                .order_by(Appointment.starts_at.desc()).limit(limit)))


def of_branch_day(session: Session, branch: str, on: date, group: Group, doctor_id: str | None) -> list[Appointment]:
    start = datetime.combine(on, datetime.min.time(), tzinfo=group.zone).astimezone(UTC)
    query = select(Appointment).where(Appointment.branch == branch, Appointment.starts_at >= start,
                                      Appointment.starts_at < start + timedelta(days=1))
    if doctor_id:
        query = query.where(Appointment.doctor_id == doctor_id)
    return list(session.scalars(query.order_by(Appointment.starts_at, Appointment.doctor_id)))


def upcoming(session: Session, member_id: uuid.UUID, now: datetime) -> list[Appointment]:
    return list(session.scalars(select(Appointment).where(
        Appointment.member_id == member_id, Appointment.status == "booked", Appointment.starts_at >= now)
        .order_by(Appointment.starts_at).limit(20)))


def local_day(appointment: Appointment, group: Group) -> date:
    return local_date(appointment.starts_at, group.zone)


def booked_event(appointment: Appointment) -> dict[str, Any]:
    return {"appointment_id": appointment.id, "member_id": appointment.member_id, "branch": appointment.branch,
            "doctor_id": appointment.doctor_id, "starts_at": appointment.starts_at, "ends_at": appointment.ends_at,
            "service_category": appointment.service_category}


def rescheduled_event(appointment: Appointment, previous: datetime) -> dict[str, Any]:
    return {"appointment_id": appointment.id, "member_id": appointment.member_id, "branch": appointment.branch,
            "doctor_id": appointment.doctor_id, "previous_starts_at": previous,
            "starts_at": appointment.starts_at, "ends_at": appointment.ends_at}


def cancelled_event(appointment: Appointment) -> dict[str, Any]:
    return {"appointment_id": appointment.id, "member_id": appointment.member_id, "branch": appointment.branch,
            "starts_at": appointment.starts_at, "reason": appointment.cancel_reason or "not given"}
