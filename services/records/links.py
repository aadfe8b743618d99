"""Confirm and cancel links from appointment messages: what a link names, and using it once.

Notifications signs each message's links (``kit.links``: appointment, action, expiry at the start, a nonce
per link); records verifies them with the same secret and acts. A link is used under the patient's and the
appointment's row locks (the lock order: patient, then appointment), so of two uses at the same moment one
acts and the other, once it has the rows, finds the nonce used: "already done", nothing changed. Each use is
in the audit trail (actor ``appointment-link``), never the token.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from services.kit import links as signed
from services.kit.caller import Identity
from services.kit.config import Group
from services.kit.errors import NotFound
from services.kit.telemetry import counter
from services.records import audit
from services.records.models import Appointment, AppointmentLinkUse
from services.records.rules import links as rules

LINKS = counter("careloop_records_appointment_links_total", "Confirm/cancel links used, by action and outcome",
                ("action", "outcome"))

LINK_ACTOR = Identity(kind="patient", subject="appointment-link", role="patient")
"""Who acts through a link, in the audit trail: the patient the message went to, without a login."""


def claims(keys: signed.Keys, token: str, now: datetime) -> signed.Claims:
    """The link's claims (``NotFound``: not ours or tampered; ``Gone``: expired)."""
    found = signed.verify(keys, token, now)
    if found.action not in rules.ACTIONS or not 0 < len(found.nonce) <= 64:
        raise NotFound(signed.INVALID_MESSAGE)
    return found


def view(session: Session, claims_: signed.Claims, appointment: Appointment, group: Group) -> dict[str, Any]:
    """What the link's page shows (nothing is changed by looking: mail scanners open links)."""
    used = session.get(AppointmentLinkUse, claims_.nonce)
    local = appointment.starts_at.astimezone(group.zone)
    branch = group.branches.get(appointment.branch)
    return {"action": claims_.action, "used": used is not None, "appointment_id": appointment.id,
            "status": appointment.status, "confirmed_at": appointment.confirmed_at, "starts_at": appointment.starts_at,
            "starts_local": local.strftime("%Y-%m-%d %H:%M"), "branch": appointment.branch,
            "branch_name": branch.name if branch else appointment.branch}


def confirmed_event(appointment: Appointment) -> dict[str, Any]:
    """``appointment_confirmed`` of an appointment a link has just confirmed."""
    return {"appointment_id": appointment.id, "member_id": appointment.member_id, "branch": appointment.branch,
            "doctor_id": appointment.doctor_id, "starts_at": appointment.starts_at,
            "confirmed_at": appointment.confirmed_at}


def use(session: Session, claims_: signed.Claims, appointment: Appointment, now: datetime) -> str:
    """Use the link once on ``appointment`` (locked by the caller, its patient first): its outcome. The
    caller applies ``cancelled`` through the cancellation rule; ``confirmed`` is set here."""
    if session.get(AppointmentLinkUse, claims_.nonce) is not None:
        outcome = rules.ALREADY_DONE
    else:
        outcome = rules.decide(claims_.action, appointment.status, appointment.confirmed_at is not None,
                               appointment.starts_at, now)
        session.add(AppointmentLinkUse(nonce=claims_.nonce, appointment_id=appointment.id,
                                       action=claims_.action, outcome=outcome, used_at=now))
        if outcome == rules.CONFIRMED:
            appointment.confirmed_at, appointment.updated_at = now, now
        session.add(audit.entry(LINK_ACTOR, "write", "appointment", appointment.member_id, f"{claims_.action} link",
                                "granted", resource_id=str(appointment.id), detail=outcome, at=now))
    LINKS.labels(claims_.action, outcome).inc()
    return outcome
