"""The records service's tables.

Clinical content (history, allergies, medication, notes, the dental chart, care-plan texts, and the
free text of follow-ups and feedback) is encrypted field by field (``Encrypted``: AES-GCM, key id in
each value, rotatable with ``python -m services.kit.rotate records``). What the service must count,
sort or constrain in SQL (ids, branches, statuses, dates, amounts) stays in the clear.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from services.kit.crypto import Encrypted
from services.kit.models import BigId, UtcDateTime, model_base

Base = model_base()


class Patient(Base):
    """What records knows of a member: enough to tell a first visit, and the state follow-ups start from.
    The row is also what concurrent completions of one member's bills queue on."""

    __tablename__ = "patients"

    member_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    home_branch: Mapped[str | None] = mapped_column(String(16))
    referrer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    enrolled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    enrolled_on: Mapped[date | None] = mapped_column(Date)  # local day
    first_arrived_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    completed_visits: Mapped[int] = mapped_column(Integer, default=0)
    paid_visits: Mapped[int] = mapped_column(Integer, default=0)
    last_visit_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    last_visit_on: Mapped[date | None] = mapped_column(Date)
    treatment: Mapped[str | None] = mapped_column(String(16))  # after the last completed visit
    # members' status as its events told it: active, frozen, closed, or merged (an alias of another patient)
    membership_status: Mapped[str] = mapped_column(String(16), default="active", server_default="active")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        # the daily follow-up scan reads only patients who never came or are in treatment
        Index("ix_patients_never_came", "enrolled_on", postgresql_where=text("first_arrived_at IS NULL"),
              sqlite_where=text("first_arrived_at IS NULL")),
        Index("ix_patients_in_treatment", "last_visit_on", postgresql_where=text("treatment = 'ongoing'"),
              sqlite_where=text("treatment = 'ongoing'")),
    )


class HealthProfile(Base):
    __tablename__ = "health_profiles"

    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.member_id"), primary_key=True)
    medical_history: Mapped[str | None] = mapped_column(Encrypted("health_profiles.medical_history"))  # JSON
    allergies: Mapped[str | None] = mapped_column(Encrypted("health_profiles.allergies"))  # JSON
    family_history: Mapped[str | None] = mapped_column(Encrypted("health_profiles.family_history"))  # JSON
    medication: Mapped[str | None] = mapped_column(Encrypted("health_profiles.medication"))  # JSON
    notes: Mapped[str | None] = mapped_column(Encrypted("health_profiles.notes"))
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_by: Mapped[str] = mapped_column(String(80))


class HealthProfileRevision(Base):
    """Each saved version of a profile, whole: a clinical record is amended, never overwritten."""

    __tablename__ = "health_profile_revisions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.member_id"))
    version: Mapped[int] = mapped_column(Integer)
    snapshot: Mapped[str] = mapped_column(Encrypted("health_profile_revisions.snapshot"))  # JSON
    changed: Mapped[str] = mapped_column(String(200))  # field names only
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    changed_by: Mapped[str] = mapped_column(String(80))
    changed_by_role: Mapped[str] = mapped_column(String(32))

    __table_args__ = (UniqueConstraint("member_id", "version", name="uq_health_profile_revisions_version"),)


class DentalChart(Base):
    __tablename__ = "dental_charts"

    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.member_id"), primary_key=True)
    teeth: Mapped[str] = mapped_column(Encrypted("dental_charts.teeth"))  # JSON {"36": state}
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_by: Mapped[str] = mapped_column(String(80))


class ChartChange(Base):
    """One save of a chart: what changed (tooth, finding, before, after), when, by whom, at which visit."""

    __tablename__ = "chart_changes"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.member_id"))
    version: Mapped[int] = mapped_column(Integer)
    changes: Mapped[str] = mapped_column(Encrypted("chart_changes.changes"))  # JSON list
    visit_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    changed_by: Mapped[str] = mapped_column(String(80))
    changed_by_role: Mapped[str] = mapped_column(String(32))

    __table_args__ = (
        UniqueConstraint("member_id", "version", name="uq_chart_changes_version"),
        Index("ix_chart_changes_member", "member_id", "changed_at", "id"),
    )


class Visit(Base):
    __tablename__ = "visits"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.member_id"))
    branch: Mapped[str] = mapped_column(String(16))
    doctor_id: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    appointment_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    bill_id: Mapped[str | None] = mapped_column(String(64), unique=True)  # the HIS bill: one visit per bill
    bill_hash: Mapped[str | None] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    total_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    qualifying_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_qualifying_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    treatment: Mapped[str | None] = mapped_column(String(16))
    outpatient_surgery: Mapped[bool] = mapped_column(Boolean, default=False)
    first_visit: Mapped[bool] = mapped_column(Boolean, default=False)
    first_paid_visit: Mapped[bool] = mapped_column(Boolean, default=False)
    referral_source: Mapped[str | None] = mapped_column(String(80))
    visit_at: Mapped[datetime] = mapped_column(UtcDateTime)  # when it happens: the booked time, then arrival
    scheduled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    arrived_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    arrived_on: Mapped[date | None] = mapped_column(Date)  # local day, for KPIs
    treatment_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    completed_on: Mapped[date | None] = mapped_column(Date)  # local day, for KPIs
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # cancelled or no-show
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # a historical visit brought over by an import (``imports.py``): the import's key for its bill, else null
    import_key: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (
        Index("ix_visits_member", "member_id", "visit_at", "id"),
        # KPIs: arrivals and completions of a branch in a range of local days; the included columns
        # let PostgreSQL answer from the index alone
        Index("ix_visits_branch_arrived", "branch", "arrived_on",
              postgresql_include=["kind", "status", "treatment", "referral_source"]),
        Index("ix_visits_branch_completed", "branch", "completed_on",
              postgresql_include=["member_id", "total_minor", "refunded_minor"]),
        Index("ix_visits_completed", "completed_at", "id"),  # the visit audit's keyset walk
        Index("ix_visits_export", "updated_at", "id"),  # the warehouse's export (kit.exports)
    )

    @property
    def imported(self) -> bool:
        return self.import_key is not None


class VisitItem(Base):
    __tablename__ = "visit_items"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    visit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("visits.id"), index=True)
    category: Mapped[str] = mapped_column(String(24))
    code: Mapped[str] = mapped_column(String(32))
    amount_minor: Mapped[int] = mapped_column(BigInteger)


class VisitPayment(Base):
    __tablename__ = "visit_payments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    visit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("visits.id"), index=True)
    method: Mapped[str] = mapped_column(String(24))
    amount_minor: Mapped[int] = mapped_column(BigInteger)


class VisitRefund(Base):
    __tablename__ = "visit_refunds"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    visit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("visits.id"), index=True)
    his_refund_id: Mapped[str] = mapped_column(String(64), unique=True)  # one refund per HIS refund
    request_hash: Mapped[str] = mapped_column(String(64))
    payments: Mapped[str] = mapped_column(String(2000))  # JSON [{"method","amount_minor"}]
    total_minor: Mapped[int] = mapped_column(BigInteger)
    qualifying_minor: Mapped[int] = mapped_column(BigInteger)
    full: Mapped[bool] = mapped_column(Boolean)
    refunded_at: Mapped[datetime] = mapped_column(UtcDateTime)
    refunded_by: Mapped[str] = mapped_column(String(80))


class CarePlan(Base):
    __tablename__ = "care_plans"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.member_id"))
    branch: Mapped[str] = mapped_column(String(16))
    recall_type: Mapped[str] = mapped_column(String(24))
    recall_interval_months: Mapped[int] = mapped_column(SmallInteger)
    guidance: Mapped[str | None] = mapped_column(Encrypted("care_plans.guidance"))
    diet: Mapped[str | None] = mapped_column(Encrypted("care_plans.diet"))
    prevention: Mapped[str | None] = mapped_column(Encrypted("care_plans.prevention"))
    last_reset_on: Mapped[date | None] = mapped_column(Date)
    next_recall_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="active")
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_by: Mapped[str] = mapped_column(String(80))

    __table_args__ = (
        UniqueConstraint("member_id", "recall_type", name="uq_care_plans_member_recall"),
        Index("ix_care_plans_due", "branch", "next_recall_on"),
    )


class Slot(Base):
    """A doctor's bookable time at a branch."""

    __tablename__ = "slots"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    branch: Mapped[str] = mapped_column(String(16))
    doctor_id: Mapped[str] = mapped_column(String(64))
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime)
    local_day: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        UniqueConstraint("doctor_id", "starts_at", name="uq_slots_doctor_start"),
        Index("ix_slots_branch_day", "branch", "local_day", "starts_at"),
    )


class Appointment(Base):
    __tablename__ = "appointments"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.member_id"))
    slot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("slots.id"))
    branch: Mapped[str] = mapped_column(String(16))
    doctor_id: Mapped[str] = mapped_column(String(64))
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime)
    service_category: Mapped[str] = mapped_column(String(24))
    status: Mapped[str] = mapped_column(String(16))
    visit_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    cancel_reason: Mapped[str | None] = mapped_column(String(200))
    # the patient said they will come (a reminder's confirm link); the status stays "booked"
    confirmed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(80))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        # one live appointment per slot, enforced by the database: of two bookings at the same moment
        # exactly one commits
        Index("uq_appointments_taken_slot", "slot_id", unique=True,
              postgresql_where=text("status IN ('booked', 'checked_in')"),
              sqlite_where=text("status IN ('booked', 'checked_in')")),
        Index("ix_appointments_member", "member_id", "starts_at"),
        Index("ix_appointments_branch", "branch", "starts_at"),
    )


class WaitlistEntry(Base):
    """A patient waiting for an earlier slot at a branch (with one doctor, or any), between two local days."""

    __tablename__ = "waitlist_entries"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.member_id"))
    branch: Mapped[str] = mapped_column(String(16))
    doctor_id: Mapped[str | None] = mapped_column(String(64))  # null: any doctor of the branch
    service_category: Mapped[str] = mapped_column(String(24))
    earliest_on: Mapped[date] = mapped_column(Date)
    latest_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))  # waiting, booked, withdrawn
    appointment_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # the appointment an accepted offer made
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(80))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        # who is offered a cancelled slot: waiting entries of the branch, first come first served
        Index("ix_waitlist_entries_waiting", "branch", "status", "created_at"),
        Index("ix_waitlist_entries_member", "member_id", "status"),
    )


class AppointmentLinkUse(Base):
    """A confirm or cancel link from a message, used: its nonce is here once, so a link acts once."""

    __tablename__ = "appointment_link_uses"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    appointment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("appointments.id"))
    action: Mapped[str] = mapped_column(String(16))  # confirm, cancel
    outcome: Mapped[str] = mapped_column(String(16))  # confirmed, cancelled, already_done
    used_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_appointment_link_uses_appointment", "appointment_id"),)


class WaitlistOffer(Base):
    """A cancelled slot offered to one waiting patient; of the offers of one slot, the first accepted wins."""

    __tablename__ = "waitlist_offers"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    entry_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("waitlist_entries.id"))
    member_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    slot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("slots.id"))
    status: Mapped[str] = mapped_column(String(16))  # open, accepted, gone (taken by another), lapsed
    offered_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    appointment_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)

    __table_args__ = (
        UniqueConstraint("entry_id", "slot_id", name="uq_waitlist_offers_entry_slot"),
        Index("ix_waitlist_offers_slot", "slot_id", "status"),
    )


class FollowUp(Base):
    """A callback task."""

    __tablename__ = "follow_ups"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.member_id"))
    branch: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(24))
    queue: Mapped[str] = mapped_column(String(24))
    due_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="open")
    outcome: Mapped[str | None] = mapped_column(String(24))
    notes: Mapped[str | None] = mapped_column(Encrypted("follow_ups.notes"))
    next_appointment_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    source_visit_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    dedupe_key: Mapped[str] = mapped_column(String(120), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    closed_by: Mapped[str | None] = mapped_column(String(80))

    __table_args__ = (
        Index("ix_follow_ups_queue", "branch", "queue", "status", "due_on", "id"),
        Index("ix_follow_ups_member", "member_id", "status"),
    )


class Feedback(Base):
    """A survey answer or a complaint."""

    __tablename__ = "feedback"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.member_id"))
    visit_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("visits.id"))
    branch: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    satisfaction: Mapped[str | None] = mapped_column(String(24))
    score: Mapped[int | None] = mapped_column(SmallInteger)  # 1..5 from the satisfaction level
    nps: Mapped[int | None] = mapped_column(SmallInteger)
    comment: Mapped[str | None] = mapped_column(Encrypted("feedback.comment"))
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16))
    submitted_at: Mapped[datetime] = mapped_column(UtcDateTime)
    submitted_on: Mapped[date] = mapped_column(Date)  # local day, for KPIs
    response_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    first_response_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    response_seconds: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[str | None] = mapped_column(Encrypted("feedback.response"))
    resolution: Mapped[str | None] = mapped_column(Encrypted("feedback.resolution"))
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    handled_by: Mapped[str | None] = mapped_column(String(80))

    __table_args__ = (
        # one survey answer per visit
        Index("uq_feedback_visit_survey", "visit_id", unique=True,
              postgresql_where=text("kind = 'survey'"), sqlite_where=text("kind = 'survey'")),
        Index("ix_feedback_branch_day", "branch", "submitted_on"),
        Index("ix_feedback_open_complaints", "branch", "status", "response_due_at",
              postgresql_where=text("kind = 'complaint'"), sqlite_where=text("kind = 'complaint'")),
    )


class AuditEntry(Base):
    """One access to health data, granted or refused: who, when, what, why. Append-only."""

    __tablename__ = "audit_trail"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(80))
    actor_role: Mapped[str] = mapped_column(String(32))
    actor_branches: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(16))  # read, write
    resource: Mapped[str] = mapped_column(String(32))  # profile, chart, care_plan, record ...
    member_id: Mapped[str | None] = mapped_column(String(64))  # as asked for, even if it names nobody
    resource_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(16))  # granted, refused
    detail: Mapped[str | None] = mapped_column(String(200))  # e.g. the fields changed (names only)
    request_id: Mapped[str | None] = mapped_column(String(64))
    call_id: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        Index("ix_audit_trail_member", "member_id", "at", "id"),
        Index("ix_audit_trail_actor", "actor", "at", "id"),
        Index("ix_audit_trail_at", "at", "id"),
    )


class RecordMerge(Base):
    """One ``member_merged`` applied to the records: the merged member's profile and chart as they were
    before (encrypted, to give them back on ``member_unmerged``) and what the merge added to the survivor's."""

    __tablename__ = "record_merges"

    merge_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    survivor_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    merged_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    status: Mapped[str] = mapped_column(String(16))  # merged, unmerged
    merged_before: Mapped[str] = mapped_column(Encrypted("record_merges.merged_before"))  # JSON
    brought: Mapped[str] = mapped_column(Encrypted("record_merges.brought"))  # JSON
    merged_at: Mapped[datetime] = mapped_column(UtcDateTime)
    unmerged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class MergeMove(Base):
    """One row a merge moved to the survivor (or closed): what ``member_unmerged`` puts back."""

    __tablename__ = "merge_moves"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    merge_id: Mapped[str] = mapped_column(ForeignKey("record_merges.merge_id"))
    table_name: Mapped[str] = mapped_column(String(32))
    row_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))  # moved, closed
    original_version: Mapped[int | None] = mapped_column(Integer)  # history rows are renumbered on the survivor

    __table_args__ = (UniqueConstraint("merge_id", "table_name", "row_id", name="uq_merge_moves_row"),)


class MemberAlias(Base):
    """A merged member's id, which names the survivor in every call and event until the merge is reversed."""

    __tablename__ = "member_aliases"

    alias_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    member_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    merge_id: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class VisitAudit(Base):
    """One run of the cross-service visit audit (``visit_audit.py``): the window it walked and what it found."""

    __tablename__ = "visit_audits"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    run_key: Mapped[str] = mapped_column(String(80), unique=True)  # nightly:<local day>, or manual:<uuid>
    trigger: Mapped[str] = mapped_column(String(16))  # nightly, manual
    state: Mapped[str] = mapped_column(String(16))  # running, finished, failed
    since: Mapped[datetime] = mapped_column(UtcDateTime)
    until: Mapped[datetime] = mapped_column(UtcDateTime)  # completed before this (now - the settle window)
    settle_seconds: Mapped[int] = mapped_column(Integer)
    visits_checked: Mapped[int] = mapped_column(Integer, default=0)
    visits_unsettled: Mapped[int] = mapped_column(Integer, default=0)  # a refund within the settle window
    mismatches: Mapped[int] = mapped_column(Integer, default=0)  # visits with at least one finding
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    started_by: Mapped[str] = mapped_column(String(80))
    error: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (Index("ix_visit_audits_started", "started_at"),)


class VisitAuditFinding(Base):
    """A visit whose effects in points or members do not match its bill, as one audit run found it."""

    __tablename__ = "visit_audit_findings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    audit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("visit_audits.id"))
    visit_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    member_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    kind: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(300))
    expected: Mapped[int | None] = mapped_column(BigInteger)
    found: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_visit_audit_findings_audit", "audit_id", "id"),)
