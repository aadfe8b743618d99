"""The HL7 message log: one row per (sending facility, MSH-10), claimed before the message is handled and
given its ACK in the same transaction, so that a resend — however soon, even while the first is still being
handled — gets the first ACK and has no second effect.

The claim is an ``INSERT ... ON CONFLICT DO NOTHING``: a twin arriving while the first is handled waits on
the unique index (PostgreSQL) or the database gate (SQLite) until the first commits, then finds its row.
A first attempt that fails (a service unreachable) rolls back, row and all: a resend runs it again.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.orm import Session

from services.interfaces.hl7.messages import Inbound
from services.interfaces.models import Hl7Message
from services.kit.crypto import Encrypted
from services.kit.models import UtcDateTime

_CLAIM = (text("INSERT INTO hl7_messages (facility, control_id, message_type, received_via, received_at, original) "
               "VALUES (:facility, :control_id, :message_type, :received_via, :received_at, :original) "
               "ON CONFLICT (facility, control_id) DO NOTHING RETURNING id")
          .bindparams(bindparam("received_at", type_=UtcDateTime()),
                      bindparam("original", type_=Encrypted("hl7_messages.original"))))


def claim(session: Session, inbound: Inbound, via: str, now: datetime) -> int | None:
    """The new log row's id, or None: this facility sent this control id before (``answered`` has the ACK)."""
    return session.execute(_CLAIM, {
        "facility": inbound.facility, "control_id": inbound.control_id, "message_type": inbound.message_type,
        "received_via": via[:200], "received_at": now, "original": inbound.text}).scalar()


def answered(session: Session, inbound: Inbound) -> str | None:
    """The ACK given to this facility's message with this control id."""
    return session.scalar(select(Hl7Message.ack).where(Hl7Message.facility == inbound.facility,
                                                       Hl7Message.control_id == inbound.control_id))


def settle(session: Session, claimed: int, ack: str, ack_code: str, member_id: uuid.UUID | str | None) -> None:
    """Keep the ACK (and the member the message was about) with the claim."""
    session.execute(update(Hl7Message).where(Hl7Message.id == claimed).values(
        ack=ack, ack_code=ack_code, member_id=uuid.UUID(str(member_id)) if member_id else None))
