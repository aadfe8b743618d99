"""The interfaces service's tables.

- ``identity_reviews``: an incoming patient (from a HIS webhook, FHIR, HL7 or an import) that probably is
  a member already but not surely; it waits here, with the original message, until a branch manager links
  it to a member or creates a new one. The patient, the candidates and the original message are personal
  data: encrypted at rest. ``source_ref`` (the sender's message id, when it has one) makes a message queue
  one review however often it is sent.
- ``identity_review_log``: who queued, read and resolved each review, and when (the audit of the queue).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from services.kit.crypto import Encrypted
from services.kit.models import BigId, UtcDateTime, model_base

Base = model_base()

# review states
OPEN = "open"  # waiting for someone to decide
LINKED = "linked"  # resolved: the patient is member ``member_id`` (the identifiers were added to it)
CREATED = "created"  # resolved: a new member ``member_id`` was enrolled
REVIEW_STATES = (OPEN, LINKED, CREATED)


class IdentityReview(Base):
    __tablename__ = "identity_reviews"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    branch: Mapped[str] = mapped_column(String(16))  # whose front desk decides: the patient's branch
    source: Mapped[str] = mapped_column(String(120))  # who sent it: "webhook:his-jingan", "hl7:HIS01", ...
    source_ref: Mapped[str | None] = mapped_column(String(200))  # the sender's message id, if it has one
    status: Mapped[str] = mapped_column(String(12), default=OPEN)
    patient: Mapped[str] = mapped_column(Encrypted("identity_reviews.patient"))  # JSON: the patient as given
    candidates: Mapped[str] = mapped_column(Encrypted("identity_reviews.candidates"))  # JSON: members matched
    original: Mapped[str | None] = mapped_column(Encrypted("identity_reviews.original"))  # the message as received
    original_format: Mapped[str | None] = mapped_column(String(60))  # its media type
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(200))  # "<kind>:<subject> (<role>)"
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    member_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # the member it was linked to or created as

    __table_args__ = (
        UniqueConstraint("source", "source_ref", name="uq_identity_reviews_source_ref"),
        Index("ix_identity_reviews_queue", "branch", "status", "created_at", "id"),
    )


class IdentityReviewLog(Base):
    """One thing done to a review: ``queued``, ``read`` (its personal data shown), ``linked``, ``created``."""

    __tablename__ = "identity_review_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    review_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("identity_reviews.id"))
    action: Mapped[str] = mapped_column(String(12))
    actor: Mapped[str] = mapped_column(String(200))  # "<kind>:<subject> (<role>)"
    at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_identity_review_log_review", "review_id", "id"),)
