"""The interfaces service's tables.

- ``identity_reviews``: an incoming patient (from a HIS webhook, FHIR, HL7 or an import) that probably is
  a member already but not surely; it waits here, with the original message, until a branch manager links
  it to a member or creates a new one. The patient, the candidates and the original message are personal
  data: encrypted at rest. ``source_ref`` (the sender's message id, when it has one) makes a message queue
  one review however often it is sent.
- ``identity_review_log``: who queued, read and resolved each review, and when (the audit of the queue).
- ``import_jobs``: a file being imported (``imports/``): its state, options, counts and progress; the file
  itself lies in ``IMPORT_DIR`` under the job's id. ``import_issues``: the row-by-row report (row, column,
  value, message) of its dry run and its commit; the value is personal data, encrypted. ``import_seen``:
  the identities (digests from members) met so far in a dry run, to find the same person twice in one file.
  ``import_job_log``: who created, uploaded, checked, committed, cancelled and read each job (the audit).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, Uuid
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


class Hl7Message(Base):
    """One HL7 v2 message received (MLLP or HTTP), keyed by who sent it and its control id (MSH-4, MSH-10):
    a resend finds its row and gets the same ACK, with no second effect. The message and its ACK are
    personal data (PID): encrypted. ``ack`` is empty while the message is being handled (a resend arriving
    then waits on this row: the claim is the row's insert)."""

    __tablename__ = "hl7_messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    facility: Mapped[str] = mapped_column(String(64))  # MSH-4: the sending facility (the integration)
    control_id: Mapped[str] = mapped_column(String(64))  # MSH-10
    message_type: Mapped[str] = mapped_column(String(16))  # "ADT^A04", "DFT^P03", ...
    received_via: Mapped[str] = mapped_column(String(200))  # "mllp" or "http:<kind>:<subject>"
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    original: Mapped[str] = mapped_column(Encrypted("hl7_messages.original"))  # as decoded (MSH-18)
    ack_code: Mapped[str | None] = mapped_column(String(2))  # AA, AE, AR
    ack: Mapped[str | None] = mapped_column(Encrypted("hl7_messages.ack"))
    member_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # the member it was about, when one

    __table_args__ = (UniqueConstraint("facility", "control_id", name="uq_hl7_messages_control_id"),)


class Hl7Appointment(Base):
    """Which appointment a sending facility's appointment id (SIU SCH-1) was booked as (for its S15)."""

    __tablename__ = "hl7_appointments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    facility: Mapped[str] = mapped_column(String(64))
    placer_id: Mapped[str] = mapped_column(String(100))
    appointment_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    booked_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (UniqueConstraint("facility", "placer_id", name="uq_hl7_appointments_placer"),)


# outbound webhook delivery states
PENDING = "pending"  # waiting for its next attempt (``next_attempt_at``)
DELIVERED = "delivered"  # the target answered 2xx
PARKED = "parked"  # no 2xx for the whole retry window (or the target left the allowlist): replay by hand
DELIVERY_STATES = (PENDING, DELIVERED, PARKED)


class WebhookSubscription(Base):
    """An integration's wish to be told of one event type at a URL, signed with its secret (encrypted: signing
    needs it in the clear). ``disabled_at``: no new deliveries."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    integration: Mapped[str] = mapped_column(String(64))  # who it is for (the gateway's integration id)
    event_type: Mapped[str] = mapped_column(String(40))
    target_url: Mapped[str] = mapped_column(String(500))
    secret: Mapped[str] = mapped_column(Encrypted("webhook_subscriptions.secret"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(200))
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_webhook_subscriptions_event", "event_type", "disabled_at"),)


class WebhookDelivery(Base):
    """One event for one subscription, until delivered or parked; one per (subscription, event id)."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    subscription_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_subscriptions.id"))
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)  # the JSON sent (an event carries ids, never personal data)
    state: Mapped[str] = mapped_column(String(12), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    first_at: Mapped[datetime] = mapped_column(UtcDateTime)  # the retry window starts here (a replay restarts it)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id", name="uq_webhook_deliveries_event"),
        Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
        Index("ix_webhook_deliveries_log", "subscription_id", "created_at", "id"),
    )


class WebhookAttempt(Base):
    """One try of a delivery: when, what the target answered (status, or the error), how long it took."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_deliveries.id"))
    number: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(300))
    duration_ms: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("ix_webhook_attempts_delivery", "delivery_id", "id"),)


# import job states, in the order a job goes through them (or to failed / cancelled)
UPLOADED, VALIDATING, VALIDATED, IMPORTING, DONE, FAILED, CANCELLED = (
    "uploaded", "validating", "validated", "importing", "done", "failed", "cancelled")
IMPORT_STATES = (UPLOADED, VALIDATING, VALIDATED, IMPORTING, DONE, FAILED, CANCELLED)


class ImportJob(Base):
    __tablename__ = "import_jobs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # what the rows are: members, points_openings, wallet_openings, visits
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(12), default=UPLOADED)
    filename: Mapped[str] = mapped_column(String(200))
    file_kind: Mapped[str] = mapped_column(String(8))  # "csv" or "xlsx"
    encoding: Mapped[str | None] = mapped_column(String(16))  # a CSV's, as stated or as detected
    sheet: Mapped[str | None] = mapped_column(String(100))
    day_first: Mapped[bool | None] = mapped_column(Boolean)
    mapping: Mapped[str | None] = mapped_column(Text)  # JSON: header as written -> field
    default_branch: Mapped[str | None] = mapped_column(String(16))
    identifier_system: Mapped[str | None] = mapped_column(String(200))  # of a balances sheet's identifier column
    branches: Mapped[str | None] = mapped_column(Text)  # JSON list: the branches its rows may name (None: all)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    columns: Mapped[str | None] = mapped_column(Text)  # JSON: the columns found and the ones ignored
    total_rows: Mapped[int | None] = mapped_column(Integer)
    processed_rows: Mapped[int] = mapped_column(Integer, default=0)  # of the current phase
    valid_rows: Mapped[int] = mapped_column(Integer, default=0)
    invalid_rows: Mapped[int] = mapped_column(Integer, default=0)
    present_rows: Mapped[int] = mapped_column(Integer, default=0)  # an existing member matches them
    repeated_rows: Mapped[int] = mapped_column(Integer, default=0)  # the same person as an earlier row
    imported_rows: Mapped[int] = mapped_column(Integer, default=0)
    phase_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    error: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_import_jobs_recent", "created_at", "id"),
                      Index("ix_import_jobs_state", "state"))


class ImportIssue(Base):
    __tablename__ = "import_issues"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("import_jobs.id"))
    phase: Mapped[str] = mapped_column(String(8))  # "dry_run" or "commit"
    row: Mapped[int] = mapped_column(Integer)
    column: Mapped[str] = mapped_column(String(100))
    value: Mapped[str | None] = mapped_column(Encrypted("import_issues.value"))
    message: Mapped[str] = mapped_column(String(500))

    __table_args__ = (Index("ix_import_issues_job", "job_id", "phase", "id"),)


class ImportSeen(Base):
    __tablename__ = "import_seen"

    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    identity: Mapped[str] = mapped_column(String(32), primary_key=True)
    row: Mapped[int] = mapped_column(Integer)


class ImportJobLog(Base):
    __tablename__ = "import_job_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("import_jobs.id"))
    action: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_import_job_log_job", "job_id", "id"),)
