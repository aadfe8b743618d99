"""Who a facility's patient is: the one place that turns an HL7 PID into a member.

Today it enrols through members' ``enrol`` and reads its duplicate answer: a Conflict on the same ID
document, or on the same phone together with the same name and date of birth, is a sure match (linked);
any other match is only probable and is answered AE (nothing created or changed) for a person to resolve.
Which member a facility's patient id (PID-3) is stays in ``hl7_patients`` (a keyed hash of the id).

When members keeps other systems' identifiers and interfaces has the identity rule with its review
queue (issue 18, item 3), ``register`` becomes one call to that rule (the facility's patient id as an
identifier under the facility's system) and ``member_of`` a lookup by identifier; nothing else changes.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Uuid, bindparam, select, text
from sqlalchemy.orm import Session

from services.interfaces.hl7.messages import DUPLICATE_KEY, Patient, Refused
from services.interfaces.models import Hl7Patient
from services.kit.crypto import blind_index
from services.kit.errors import Conflict
from services.kit.models import UtcDateTime

INDEX_CONTEXT = "hl7_patients.patient"
_LINK = (text("INSERT INTO hl7_patients (facility, patient_index, member_id, linked_at) "
              "VALUES (:facility, :patient_index, :member_id, :linked_at) "
              "ON CONFLICT (facility, patient_index) DO NOTHING")
         .bindparams(bindparam("linked_at", type_=UtcDateTime()), bindparam("member_id", type_=Uuid())))


def member_of(session: Session, facility: str, patient_id: str) -> uuid.UUID | None:
    """The member the facility's patient id was registered as (None: not registered here)."""
    return session.scalar(select(Hl7Patient.member_id).where(
        Hl7Patient.facility == facility, Hl7Patient.patient_index == blind_index(patient_id, INDEX_CONTEXT)))


def register(members: Any, session: Session, facility: str, patient: Patient, branch: str, key: str,
             now: datetime) -> uuid.UUID:
    """The member this patient is: known already, a sure match, or enrolled now (at ``branch``)."""
    known = member_of(session, facility, patient.patient_id)
    if known is not None:
        return known
    try:
        member_id = uuid.UUID(members.enrol({**patient.fields, "home_branch": branch, "source": "his"},
                                            idempotency_key=key)["id"])
    except Conflict as conflict:
        member_id = _sure_match(conflict)
    session.execute(_LINK, {"facility": facility, "patient_index": blind_index(patient.patient_id, INDEX_CONTEXT),
                            "member_id": member_id, "linked_at": now})
    return member_of(session, facility, patient.patient_id) or member_id


def _sure_match(conflict: Conflict) -> uuid.UUID:
    matches = (conflict.details or {}).get("matches") or []
    sure = {m["member_id"] for m in matches
            if "id_document" in m["matched_on"] or {"phone", "name_and_birth_date"} <= set(m["matched_on"])}
    if len(sure) == 1 and len({m["member_id"] for m in matches}) == 1:
        return uuid.UUID(sure.pop())
    cards = ", ".join(sorted(m["card_number"] for m in matches)) or "unknown"
    raise Refused("AE", f"The patient probably is member card {cards} but not surely; nothing was created. "
                  "Resolve it at the front desk, then send the patient again.", "PID-5", DUPLICATE_KEY) from None
