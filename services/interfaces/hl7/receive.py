"""Taking one HL7 message: read it, check who sent it and for which branch, claim its control id, do what it
asks through the owning services, and keep the ACK. The same path for MLLP and HTTP.

What each message does (``messages.HANDLED``):

- ADT^A04 register: the PID's patient goes through the identity rule (``patients.register``, PID-3 an identifier
  under ``urn:careloop:his:<MSH-4>``): a sure match is linked, nobody is enrolled, a probable match waits in the
  identity review queue with the message (answered AA, MSA-3 naming the review; no member created);
- ADT^A08 update: the member holding PID-3 gets the PID's fields (members' ``update_member``);
- ADT^A40 merge: MRG-1's member is merged into PID-3's (members' reversible ``merge_members``);
- DFT^P03 bill: the visit is completed and paid (records' ``complete_visit``, once per bill id, exactly as a
  bill webhook: points and tiers follow from ``visit_completed``);
- SIU^S12 book: the doctor's (AIP-3) free slot starting at AIS-4 is booked for the patient (records' ``book``:
  its horizon and double-booking rules); SIU^S15 cancel: the appointment SCH-1 was booked as is cancelled.

The calls to other services carry an idempotency key made from (facility, control id): a first attempt
that failed half-way (a service unreachable: nothing is logged, the sender is told to send again) repeats
no effect when the message comes again.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from services.interfaces.hl7 import appointments, log, messages, patients
from services.interfaces.hl7.messages import Inbound, Refused
from services.kit.caller import Identity
from services.kit.config import Group
from services.kit.errors import Conflict, DomainError, Forbidden, Invalid, NotFound, Unauthenticated, Unavailable
from services.kit.telemetry import counter
from services.records.events import ITEM_CATEGORIES, PAYMENT_METHODS

MESSAGES = counter("careloop_hl7_messages_total", "HL7 messages answered, by message type and ACK code",
                   ("message_type", "ack_code"))

PATIENT_FIELDS = {"full_name": "PID-5", "birth_date": "PID-7", "gender": "PID-8", "phone": "PID-13",
                  "id_document": "PID-3", "home_branch": "PV1-3", "member_id": "PID-3", "merged_id": "MRG-1",
                  "bill_id": "PV1-19", "branch": "PV1-3", "doctor_id": "PV1-7", "currency": "FT1-11",
                  "items": "FT1", "payments": "FT1", "slot_id": "AIS-4", "service_category": "AIS-3",
                  "appointment_id": "SCH-1"}
"""Where in the message a field an owning service refused came from (for the ERR segment)."""


@dataclass(frozen=True)
class Peers:
    members: Any
    records: Any


@dataclass(frozen=True)
class Done:
    ack: str
    ack_code: str
    codec: str = "utf-8"  # the message's character set (MSH-18): the ACK is sent in it


def take(session: Session, peers: Peers, raw: bytes, via: str, caller: Identity, facilities: dict[str, tuple[str, ...]],
         group: Group, now: datetime) -> Done:
    """The ACK for one message as received (bytes, any framing removed)."""
    try:
        inbound = messages.read(raw)
    except Refused as refused:
        return _count("?", Done(messages.ack(None, raw.decode("latin-1")[:2000], "AR", refused.why, refused.location,
                                             refused.error, now), "AR"))
    try:
        branch = _branch(inbound, facilities, caller)
    except Refused as refused:  # not logged: a facility not allowed must not fill the log
        return _count(inbound.message_type, _refusal(inbound, refused, now))
    claimed = log.claim(session, inbound, via, now)
    if claimed is None:
        ack = log.answered(session, inbound) or ""
        return _count(inbound.message_type, Done(ack, messages.ack_code(ack), inbound.codec))
    member_id = None
    try:
        member_id = ACTIONS[inbound.action](session, peers, inbound, branch, group, now, caller)
        note = ""
        if isinstance(member_id, patients.Held):  # taken, and parked for a person: AA, the review named
            note, member_id = member_id.note, None
        done = Done(messages.ack(inbound, None, "AA", note, now=now), "AA", inbound.codec)
    except Refused as refused:
        done = _refusal(inbound, refused, now)
    except (Forbidden, Unauthenticated) as error:
        done = _refusal(inbound, messages.rejected(error.message, None, messages.APPLICATION_ERROR), now)
    except Unavailable:
        raise  # nothing kept: the sender sends it again
    except DomainError as error:
        done = _refusal(inbound, _field_error(error), now)
    log.settle(session, claimed, done.ack, done.ack_code, member_id)
    return _count(inbound.message_type, done)


def unavailable(raw: bytes, now: datetime) -> str:
    """The ACK when the message could not be handled now (a service or the database away): AE, nothing kept,
    send it again."""
    why = "CareLoop could not handle the message just now; nothing was kept. Send it again."
    try:
        inbound = messages.read(raw)
    except Refused:
        return messages.ack(None, raw.decode("latin-1")[:2000], "AE", why, None, messages.APPLICATION_ERROR, now)
    return messages.ack(inbound, None, "AE", why, None, messages.APPLICATION_ERROR, now)


def _branch(inbound: Inbound, facilities: dict[str, tuple[str, ...]], caller: Identity) -> str:
    """The branch the message is for: PV1-3.4, else the facility's first; it must be the facility's and the
    caller's (over HTTP, the integration's branches)."""
    allowed = facilities.get(inbound.facility)
    if not allowed:
        raise messages.rejected(f"Sending facility {inbound.facility!r} (MSH-4) is not an integration here.",
                                "MSH-4", messages.UNKNOWN_KEY)
    branch = messages.branch_of(inbound.message) or allowed[0]
    if branch not in allowed:
        raise messages.rejected(f"Branch {branch!r} (PV1-3.4) is not one of facility {inbound.facility}'s.",
                                "PV1-3", messages.UNKNOWN_KEY)
    if not caller.can_see_branch(branch) and caller.kind != "service":
        raise messages.rejected(f"This credential may not send messages for branch {branch!r}.", "PV1-3",
                                messages.UNKNOWN_KEY)
    return branch


def _refusal(inbound: Inbound, refused: Refused, now: datetime) -> Done:
    return Done(messages.ack(inbound, None, refused.code, refused.why, refused.location, refused.error, now),
                refused.code, inbound.codec)


def _field_error(error: DomainError) -> Refused:
    """An owning service's refusal as an AE naming the message's field."""
    names = list(error.fields)
    location = PATIENT_FIELDS.get(names[0]) if names else None
    detail = "; ".join(f"{PATIENT_FIELDS.get(name, name)}: {' '.join(map(str, why)) if isinstance(why, list) else why}"
                       for name, why in error.fields.items())
    code = (messages.DATA_TYPE_ERROR if isinstance(error, Invalid) else
            messages.UNKNOWN_KEY if isinstance(error, NotFound) else
            messages.DUPLICATE_KEY if isinstance(error, Conflict) else messages.APPLICATION_ERROR)
    return Refused("AE", f"{error.message} {detail}".strip(), location, code)


def _key(inbound: Inbound) -> str:
    digest = hashlib.sha256(f"{inbound.facility}\x00{inbound.control_id}".encode()).hexdigest()[:40]
    return f"hl7:{digest}"


def _registered(peers: Peers, inbound: Inbound, patient_id: str, location: str) -> uuid.UUID:
    member_id = patients.member_of(peers.members, inbound.facility, patient_id)
    if member_id is None:
        raise messages.field_error(location, f"{location} names a patient no member is linked to (send the "
                                   "ADT^A04 first; one held for identity review is linked when it is resolved).",
                                   messages.UNKNOWN_KEY)
    return member_id


def _register(session: Session, peers: Peers, inbound: Inbound, branch: str, group: Group, now: datetime,
              caller: Identity) -> uuid.UUID | patients.Held:
    patient = messages.patient(inbound.message)
    return patients.register(peers.members, session, inbound, patient, branch, _key(inbound), now,
                             caller.actor)


def _update(session: Session, peers: Peers, inbound: Inbound, branch: str, group: Group,
            now: datetime, caller: Identity) -> uuid.UUID:
    patient = messages.patient(inbound.message, changes_only=True)
    member_id = _registered(peers, inbound, patient.patient_id, "PID-3")
    if patient.fields:
        peers.members.update_member(str(member_id), patient.fields, idempotency_key=_key(inbound))
    return member_id


def _merge(session: Session, peers: Peers, inbound: Inbound, branch: str, group: Group,
           now: datetime, caller: Identity) -> uuid.UUID:
    survivor = _registered(peers, inbound, messages.patient(inbound.message, changes_only=True).patient_id, "PID-3")
    merged = _registered(peers, inbound, messages.merged_patient_id(inbound.message), "MRG-1")
    if merged == survivor:
        raise messages.field_error("MRG-1", "MRG-1 and PID-3 are the same member.", messages.DUPLICATE_KEY)
    peers.members.merge_members(str(survivor), {
        "merged_id": str(merged), "reason": f"HL7 ADT^A40 from {inbound.facility} ({inbound.control_id})"[:500]},
        idempotency_key=_key(inbound))
    return survivor


def _bill(session: Session, peers: Peers, inbound: Inbound, branch: str, group: Group,
          now: datetime, caller: Identity) -> uuid.UUID:
    member_id = _registered(peers, inbound, messages.patient(inbound.message, changes_only=True).patient_id,
                            "PID-3")
    bill = messages.bill(inbound.message, ITEM_CATEGORIES, PAYMENT_METHODS)
    peers.records.complete_visit({
        "bill_id": bill.bill_id, "member_id": str(member_id), "branch": branch, "doctor_id": bill.doctor_id,
        "currency": bill.currency or group.currency, "items": bill.items, "payments": bill.payments})
    return member_id


def _book(session: Session, peers: Peers, inbound: Inbound, branch: str, group: Group,
          now: datetime, caller: Identity) -> uuid.UUID:
    member_id = _registered(peers, inbound, messages.patient(inbound.message, changes_only=True).patient_id,
                            "PID-3")
    wanted = messages.appointment(inbound.message, group.zone, booking=True)
    if appointments.booked_as(session, inbound.facility, wanted.placer_id) is not None:
        raise messages.field_error("SCH-1", f"Appointment {wanted.placer_id} was booked already (SCH-1).",
                                   messages.DUPLICATE_KEY)
    local_day = wanted.starts_at.astimezone(group.zone).date()  # type: ignore[union-attr] - required to book
    slots = peers.records.list_slots({"branch": branch, "on": local_day.isoformat(), "doctor_id": wanted.doctor_id,
                                      "free_only": True})["items"]
    slot = next((s for s in slots if datetime.fromisoformat(s["starts_at"].replace("Z", "+00:00")) == wanted.starts_at),
                None)
    if slot is None:
        raise messages.field_error("AIS-4", f"Doctor {wanted.doctor_id} has no free slot at that time (AIS-4, AIP-3).",
                                   messages.UNKNOWN_KEY)
    category = wanted.service.lower() if wanted.service and wanted.service.lower() in ITEM_CATEGORIES else "exam"
    booked = peers.records.book({"member_id": str(member_id), "slot_id": slot["id"], "service_category": category},
                                idempotency_key=_key(inbound))
    appointments.remember(session, inbound.facility, wanted.placer_id, booked["id"], now)
    return member_id


def _cancel(session: Session, peers: Peers, inbound: Inbound, branch: str, group: Group,
            now: datetime, caller: Identity) -> uuid.UUID | None:
    wanted = messages.appointment(inbound.message, group.zone, booking=False)
    appointment_id = appointments.booked_as(session, inbound.facility, wanted.placer_id)
    if appointment_id is None:
        raise messages.field_error("SCH-1", f"No appointment {wanted.placer_id} was booked by this facility (SCH-1).",
                                   messages.UNKNOWN_KEY)
    cancelled = peers.records.cancel_appointment(str(appointment_id), (wanted.reason or "cancelled by the HIS")[:200])
    return uuid.UUID(cancelled["member_id"]) if cancelled.get("member_id") else None


ACTIONS = {"register": _register, "update": _update, "merge": _merge, "bill": _bill, "book": _book,
           "cancel": _cancel}


def _count(message_type: str, done: Done) -> Done:
    MESSAGES.labels(message_type, done.ack_code or "?").inc()
    return done
