"""Who a facility's patient is: an HL7 PID through the one identity rule (``reviews.identify``).

A sending facility's patient id (PID-3) is an identifier of the member under the facility's system,
``urn:careloop:his:<MSH-4>``, kept by members like any other system's identifier. ``register`` (ADT^A04) sends
the PID with that identifier through the identity rule: a sure match is linked (the identifier added to the
member), nobody enrolled, and a probable match is queued for review with the original message, no member
created (``Held``: the message was taken, answered AA). ``member_of`` (A08, A40, DFT, SIU) asks members which
member holds the identifier; once a review is resolved (linked or created) the identifier is the member's, so
the facility's next message finds it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from services.interfaces import reviews
from services.interfaces.hl7.messages import Inbound, Patient
from services.interfaces.schemas import ArrivalSchema
from services.kit import load
from services.kit.errors import NotFound

HL7_MEDIA_TYPE = "x-application/hl7-v2+er7"


@dataclass(frozen=True)
class Held:
    """The patient waits in the identity review queue (a probable match); nobody was created or linked."""

    review_id: uuid.UUID

    @property
    def note(self) -> str:  # MSA-3 (at most 80 characters)
        return f"Held for identity review {self.review_id}; no member yet."


def system_of(facility: str) -> str:
    """The identifier system of a sending facility's patient ids (MSH-4)."""
    return f"urn:careloop:his:{facility}"


def member_of(members: Any, facility: str, patient_id: str) -> uuid.UUID | None:
    """The member the facility's patient id names (a merged member's survivor); None: nobody holds it."""
    try:
        found = members.find_by_identifier({"system": system_of(facility), "value": patient_id})
    except NotFound:
        return None
    return uuid.UUID(found["id"])


def register(members: Any, session: Session, inbound: Inbound, patient: Patient, branch: str, key: str,
             now: datetime, actor: str) -> uuid.UUID | Held:
    """The member this patient is (matched or enrolled at ``branch``), or ``Held`` in the review queue."""
    arrival = load(ArrivalSchema(), {
        "patient": {**patient.fields, "home_branch": branch, "source": "his",
                    "identifiers": [{"system": system_of(inbound.facility), "value": patient.patient_id}]},
        "source": f"hl7:{inbound.facility}", "source_ref": inbound.control_id,
        "original": inbound.text, "original_format": HL7_MEDIA_TYPE})
    done = reviews.identify(session, members, arrival, key, now, actor)
    if done["outcome"] == "review":
        return Held(done["review"].id)
    return uuid.UUID(done["member"]["id"])
