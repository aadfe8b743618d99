"""The waitlist: patients waiting for an earlier slot, offered a cancelled one, first to accept gets it.

A patient joins for a branch (one doctor or any), a service category and a window of local days. When a
slot frees (an appointment cancelled by the desk, a link, the HIS, a visit's cancellation or a membership's
closure, or moved away), the slot (if still ahead and within the branch's horizon) is offered to the first ``waitlist_offers_per_slot``
waiting patients whose entry matches (``rules.waitlist``), oldest entry first; each offer is an event that
notifications sends. Accepting locks the **slot** row first (``FOR NO KEY UPDATE``: the lock order is slot,
then patient, then appointment), so of offers accepted at the same moment one books and the others, once
the slot is theirs to look at, find their offer ``gone`` (409); the winner closes the others (an event each:
notifications tell them). The unique index on live appointments per slot stays the last word (a booking at
the desk at the same moment: the accept is told the slot was taken).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.kit.caller import Identity
from services.kit.clock import local_date
from services.kit.config import Group
from services.kit.db import fetch
from services.kit.errors import Conflict, Invalid
from services.kit.telemetry import counter
from services.records import bookings
from services.records.models import Appointment, Patient, Slot, WaitlistEntry, WaitlistOffer
from services.records.rules import waitlist as rules
from services.records.rules.practice import Practice

OFFERS = counter("careloop_records_waitlist_offers_total", "Waitlist offers by outcome (offered, accepted, gone)",
                 ("branch", "outcome"))


def join(session: Session, patient: Patient, data: dict[str, Any], group: Group, caller: Identity,
         now: datetime) -> WaitlistEntry:
    group.branch(data["branch"])
    if data["latest_on"] < data["earliest_on"]:
        raise Invalid("The window ends before it starts.", {"latest_on": ["Not before earliest_on."]})
    if data["latest_on"] < local_date(now, group.zone):
        raise Invalid("The window is already over.", {"latest_on": ["In the past."]})
    entry = WaitlistEntry(id=uuid.uuid4(), member_id=patient.member_id, branch=data["branch"],
                          doctor_id=data.get("doctor_id"), service_category=data["service_category"],
                          earliest_on=data["earliest_on"], latest_on=data["latest_on"], status=rules.WAITING,
                          created_at=now, created_by=caller.subject[:80], updated_at=now)
    session.add(entry)
    session.flush()
    return entry


def get(session: Session, entry_id: Any, lock: bool = False) -> WaitlistEntry:
    return fetch(session, WaitlistEntry, entry_id, "waitlist entry", lock=lock)


def withdraw(session: Session, entry: WaitlistEntry, now: datetime) -> WaitlistEntry:
    """Take a waiting patient off the list (their open offers stay answerable until they lapse)."""
    if entry.status == rules.WAITING:
        entry.status, entry.updated_at = rules.WITHDRAWN, now
    return entry


def of_branch(session: Session, branch: str, status: str | None, limit: int = 200) -> list[WaitlistEntry]:
    query = select(WaitlistEntry).where(WaitlistEntry.branch == branch)
    if status is not None:
        query = query.where(WaitlistEntry.status == status)
    return list(session.scalars(query.order_by(WaitlistEntry.created_at, WaitlistEntry.id).limit(limit)))


def offer_slot(session: Session, slot: Slot, cancelled_by: uuid.UUID, practice: Practice,
               group: Group, now: datetime) -> list[WaitlistOffer]:
    """Offer a slot just freed (however it was: ``RecordsService._slot_freed``) to the first matching waiting
    patients; none if it has started or lies beyond the branch's horizon (``Practice.waitlist_horizon``),
    or if it has been taken again in the meantime."""
    day = local_date(slot.starts_at, group.zone)
    if slot.starts_at <= now or not rules.offerable(day, local_date(now, group.zone),
                                                    practice.waitlist_horizon(slot.branch)):
        return []
    if session.scalar(select(Appointment.id).where(Appointment.slot_id == slot.id,
                                                   Appointment.status.in_(bookings.ACTIVE)).limit(1)) is not None:
        return []
    candidates = session.scalars(
        select(WaitlistEntry).where(WaitlistEntry.branch == slot.branch, WaitlistEntry.status == rules.WAITING,
                                    WaitlistEntry.earliest_on <= day, WaitlistEntry.latest_on >= day,
                                    WaitlistEntry.member_id != cancelled_by)
        .order_by(WaitlistEntry.created_at, WaitlistEntry.id).limit(practice.waitlist_offers_per_slot * 4))
    offered_before = set(session.scalars(select(WaitlistOffer.entry_id).where(WaitlistOffer.slot_id == slot.id)))
    chosen = rules.choose([entry for entry in candidates if entry.id not in offered_before],
                          slot.doctor_id, practice.waitlist_offers_per_slot)
    expires = min(now + timedelta(hours=practice.waitlist_offer_hours), slot.starts_at)
    offers = [WaitlistOffer(id=uuid.uuid4(), entry_id=entry.id, member_id=entry.member_id, slot_id=slot.id,
                            status=rules.OPEN, offered_at=now, expires_at=expires) for entry in chosen]
    session.add_all(offers)
    session.flush()
    OFFERS.labels(slot.branch, "offered").inc(len(offers))
    return offers


def offer(session: Session, offer_id: Any, lock: bool = False) -> WaitlistOffer:
    return fetch(session, WaitlistOffer, offer_id, "waitlist offer", lock=lock)


def accept(session: Session, offer_id: Any, patient_of: Any, group: Group, caller: Identity,
           now: datetime) -> tuple[WaitlistOffer, Appointment, list[WaitlistOffer], bool]:
    """Book the offered slot for its patient: (the offer, the appointment, the other offers now closed,
    whether this call booked it — False for a retry of an accepted offer).

    ``patient_of(member_id)``: the patient row, locked (the lock order's second step)."""
    slot_id = offer(session, offer_id).slot_id
    slot = session.scalars(select(Slot).where(Slot.id == slot_id).with_for_update(key_share=True)).one()
    current = offer(session, offer_id, lock=True)
    session.refresh(current)  # what the offer is now, after whoever held the slot before us
    entry = session.get(WaitlistEntry, current.entry_id)
    if current.status == rules.ACCEPTED:  # accepted before (a retry): the same appointment
        return current, session.get(Appointment, current.appointment_id), [], False
    problem = rules.refusal(current.status, current.expires_at, now)
    if problem:
        OFFERS.labels(slot.branch, "gone").inc()
        raise Conflict(problem, details={"offer_id": str(current.id), "status": rules.shown_status(
            current.status, current.expires_at, now)})
    patient = patient_of(current.member_id)
    appointment = bookings.book(session, patient, slot, entry.service_category, group, caller, now)
    current.status, current.answered_at, current.appointment_id = rules.ACCEPTED, now, appointment.id
    entry.status, entry.appointment_id, entry.updated_at = rules.BOOKED, appointment.id, now
    others = list(session.scalars(select(WaitlistOffer).where(
        WaitlistOffer.slot_id == slot.id, WaitlistOffer.status == rules.OPEN, WaitlistOffer.id != current.id)))
    for other in others:
        other.status, other.answered_at = rules.GONE, now
    OFFERS.labels(slot.branch, "accepted").inc()
    return current, appointment, others, True


def offered_event(session: Session, offer_row: WaitlistOffer, slot: Slot) -> dict[str, Any]:
    category = session.get(WaitlistEntry, offer_row.entry_id).service_category
    return {"offer_id": offer_row.id, "member_id": offer_row.member_id, "branch": slot.branch,
            "doctor_id": slot.doctor_id, "starts_at": slot.starts_at, "service_category": category,
            "expires_at": offer_row.expires_at}


def closed_event(offer_row: WaitlistOffer, slot: Slot) -> dict[str, Any]:
    return {"offer_id": offer_row.id, "member_id": offer_row.member_id, "branch": slot.branch,
            "starts_at": slot.starts_at, "reason": "taken"}
