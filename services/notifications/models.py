"""The notifications service's tables: deliveries and their steps, preferences, the inbox, and the copies
of other services' facts that journeys need (appointments, recalls, points for digests, the audience).

No table holds a member's phone number, e-mail or account id: addresses are read from members at send
time. The inbox keeps what was shown to the member, encrypted at rest. Staff alerts (``staff_alerts``)
are apart from members' deliveries, so that a member's history holds only messages to that member;
they keep the staff address they went to (from the group file).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from services.kit.crypto import Encrypted
from services.kit.models import BigId, UtcDateTime, model_base

Base = model_base()


# delivery states
QUEUED = "queued"  # waiting for its due time (or for the morning, or for a retry)
SENDING = "sending"  # claimed by one replica's scheduler; nobody else touches it
SENT = "sent"  # the provider accepted it
DELIVERED = "delivered"  # it reached the member (in-app inbox; provider receipts)
FAILED = "failed"  # the provider refused it for good, or the retries ran out
SUPPRESSED = "suppressed"  # a rule said no (reason recorded)
CANCELLED = "cancelled"  # its cause went away (appointment cancelled, staff cancelled it)
STATES = (QUEUED, SENDING, SENT, DELIVERED, FAILED, SUPPRESSED, CANCELLED)


class Delivery(Base):
    """One message to one member for one cause, and where it is in its life."""

    __tablename__ = "deliveries"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    member_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    journey: Mapped[str] = mapped_column(String(48))
    # journey + cause (+ channel if one was asked for): the same cause never yields a second message
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    channel: Mapped[str | None] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default=QUEUED)
    reason: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)  # when the scheduler next looks at it
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)

    category: Mapped[str] = mapped_column(String(16), default="service", server_default="service")
    requested_channel: Mapped[str | None] = mapped_column(String(16))  # a channel asked for, else the best one
    cause_ref: Mapped[str | None] = mapped_column(String(120))  # what can cancel it ("appointment:<id>")
    context: Mapped[str | None] = mapped_column(Text)  # JSON: ids and facts for the template, no personal data
    language: Mapped[str | None] = mapped_column(String(8))  # the language it was rendered in
    first_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # when the journey wanted it
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # pointless after this
    provider_id: Mapped[str | None] = mapped_column(String(128))
    claimed_by: Mapped[str | None] = mapped_column(String(80))
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    attempt_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # a provider call may be under way
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    # read only (steps are written with ``deliveries.add_step``), loaded when a delivery is shown with them
    steps: Mapped[list[DeliveryStep]] = relationship("DeliveryStep", order_by="DeliveryStep.id", viewonly=True)

    __table_args__ = (
        Index("ix_deliveries_member", "member_id", "created_at"),
        Index("ix_deliveries_due", "state", "due_at", "id"),  # the claim's order (schedule.claim_due)
        Index("ix_deliveries_cause_ref", "cause_ref", "state"),
        Index("ix_deliveries_cap", "member_id", "category", "sent_at"),
        Index("ix_deliveries_provider", "channel", "provider_id"),
    )


class DeliveryStep(Base):
    """What happened to a delivery, step by step (claimed, deferred, retried, sent...), for customer service."""

    __tablename__ = "delivery_steps"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    state: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str | None] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(Text)  # never an address or a message body
    provider_id: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (Index("ix_delivery_steps_delivery", "delivery_id", "id"),)


class Preference(Base):
    """A member's choices about messages (channel consents themselves live in members)."""

    __tablename__ = "preferences"

    member_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    channels: Mapped[str | None] = mapped_column(Text)  # JSON list in the member's order; null: the default
    marketing_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    service_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    # no marketing and no outreach (recalls, reactivation calls), whatever the consents say
    do_not_contact: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_by: Mapped[str | None] = mapped_column(String(160))


class InboxMessage(Base):
    """A message in the member's in-app inbox."""

    __tablename__ = "inbox_messages"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    member_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    delivery_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    journey: Mapped[str] = mapped_column(String(48))
    language: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str] = mapped_column(Encrypted("inbox_messages.subject"))
    body: Mapped[str] = mapped_column(Encrypted("inbox_messages.body"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    read_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_inbox_messages_member", "member_id", "created_at"),)


class Appointment(Base):
    """Our copy of an appointment (from records' events): reminders follow it, recalls wait for it."""

    __tablename__ = "appointments"

    appointment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    member_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    branch: Mapped[str | None] = mapped_column(String(16))
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime)
    service_category: Mapped[str | None] = mapped_column(String(32))  # a reschedule does not repeat it
    status: Mapped[str] = mapped_column(String(16))  # booked or cancelled
    last_event_at: Mapped[datetime] = mapped_column(UtcDateTime)  # newer facts win; older ones are ignored

    __table_args__ = (Index("ix_appointments_member", "member_id", "status", "starts_at"),)


class Recall(Base):
    """A member's recall of one type (cleaning, ortho check...): when it is due and when to write next."""

    __tablename__ = "recalls"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    member_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    recall_type: Mapped[str] = mapped_column(String(32))
    care_plan_id: Mapped[str | None] = mapped_column(String(64))
    due_on: Mapped[date] = mapped_column(Date)
    next_attempt_on: Mapped[date | None] = mapped_column(Date)  # local day of the next message; null: none
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))  # active, exhausted (reactivation list), closed
    reactivation_contacts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))  # calls made
    last_contacted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # the last reactivation call
    merged_from: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # moved here by a merge (an unmerge moves it back)
    last_event_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # of the care plan event applied last
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        UniqueConstraint("member_id", "recall_type", name="uq_recalls_member_type"),
        # the daily scan: active recalls whose next message is due, in id order
        Index("ix_recalls_due", "next_attempt_on", "id", postgresql_where=text("status = 'active'"),
              sqlite_where=text("status = 'active'")),
        # the reactivation list: exhausted recalls, longest overdue first
        Index("ix_recalls_reactivation", "status", "due_on", "id"),
    )


class DigestItem(Base):
    """One fact gathered into a summary message (a posting into the daily digest, a lot into its warning)."""

    __tablename__ = "digest_items"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(24))  # points_earned or points_expiring
    item_ref: Mapped[str] = mapped_column(String(64))  # posting id or lot id: counted once
    member_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    delivery_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    points: Mapped[int] = mapped_column(Integer)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        UniqueConstraint("kind", "item_ref", name="uq_digest_items_kind_ref"),
        Index("ix_digest_items_delivery", "delivery_id"),
    )


class AudienceMember(Base):
    """Who may be greeted on festivals: every member we heard of, with their status (from members' events)."""

    __tablename__ = "audience"

    member_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    home_branch: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))  # active, frozen, closed, merged
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_audience_status", "status", "member_id"),)


class StaffAlert(Base):
    """One alert to one staff address about one negative feedback or complaint (``alerts``): never a member's.

    The same states as deliveries (queued, sending, sent, failed, suppressed). One row per feedback, channel
    and address, ever; a negative feedback that nobody could be told about is one suppressed row with
    channel ``none`` and reason ``no_recipient``.
    """

    __tablename__ = "staff_alerts"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    feedback_id: Mapped[str] = mapped_column(String(64))
    branch: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))  # email, sms, or none (suppressed: nobody to alert)
    recipient: Mapped[str] = mapped_column(String(254))  # the staff address; "" when there is none
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(16), default=QUEUED)
    reason: Mapped[str | None] = mapped_column(Text)
    context: Mapped[str | None] = mapped_column(Text)  # JSON: ids and scores for the template, no personal data
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    provider_id: Mapped[str | None] = mapped_column(String(128))
    language: Mapped[str | None] = mapped_column(String(8))
    claimed_by: Mapped[str | None] = mapped_column(String(80))
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    attempt_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # a provider call may be under way
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        UniqueConstraint("feedback_id", "channel", "recipient", name="uq_staff_alerts_feedback_recipient"),
        Index("ix_staff_alerts_due", "state", "due_at"),
        Index("ix_staff_alerts_branch", "branch", "created_at"),
    )


# composed journeys (a manager's SOP): states of a journey, and of one member's run through it
DRAFT, ACTIVE, PAUSED, RETIRED = "draft", "active", "paused", "retired"
JOURNEY_STATES = (DRAFT, ACTIVE, PAUSED, RETIRED)
RUNNING, FINISHED, EXITED = "running", "finished", "exited"
RUN_STATES = (RUNNING, FINISHED, EXITED)


class ComposedJourney(Base):
    """A journey staff composed through the API (trigger, steps, exits); its definitions are its versions."""

    __tablename__ = "composed_journeys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(120))
    state: Mapped[str] = mapped_column(String(16), default=DRAFT)
    version: Mapped[int] = mapped_column(Integer, default=1)  # the current version: new runs start on it
    trigger: Mapped[str] = mapped_column(String(32))  # the current version's event, or "schedule"
    branches: Mapped[str] = mapped_column(Text, default="[]")  # JSON list; [] = every branch (group admins only)
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_composed_journeys_trigger", "state", "trigger"),)


class ComposedJourneyVersion(Base):
    """One version of a composed journey's definition, never changed once written."""

    __tablename__ = "composed_journey_versions"

    journey_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("composed_journeys.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    definition: Mapped[str] = mapped_column(Text)  # JSON (``schemas.JourneyDefinitionSchema``)
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class JourneyRun(Base):
    """One member going through one version of a composed journey for one cause: the step it is at and when
    that step is due (the scheduler picks due runs like due deliveries)."""

    __tablename__ = "journey_runs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    journey_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("composed_journeys.id"))
    version: Mapped[int] = mapped_column(Integer)
    member_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    cause: Mapped[str] = mapped_column(String(120))  # the visit, the appointment, the scheduled day...
    branch: Mapped[str | None] = mapped_column(String(16))
    context: Mapped[str | None] = mapped_column(Text)  # JSON: ids and facts of the trigger, no personal data
    step: Mapped[int] = mapped_column(Integer, default=0)  # the next step to take
    state: Mapped[str] = mapped_column(String(16), default=RUNNING)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    exit_reason: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        UniqueConstraint("journey_id", "member_id", "cause", name="uq_journey_runs_cause"),
        Index("ix_journey_runs_due", "state", "due_at"),
        Index("ix_journey_runs_member", "member_id", "state"),
    )


class TriggerFact(Base):
    """An event a composed journey could start on, kept 14 days so that a dry run can replay the last week."""

    __tablename__ = "journey_trigger_facts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event: Mapped[str] = mapped_column(String(32))
    member_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    cause: Mapped[str] = mapped_column(String(120))
    branch: Mapped[str | None] = mapped_column(String(16))
    facts: Mapped[str] = mapped_column(Text, default="{}")  # JSON: categories, tier... (what conditions read)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_journey_trigger_facts_event", "event", "occurred_at"),
                      Index("ix_journey_trigger_facts_member", "member_id", "occurred_at"))
