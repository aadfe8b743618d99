"""The members service's tables. Personal fields are encrypted; lookups go through blind indexes."""

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
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from services.kit.crypto import Encrypted
from services.kit.models import BigId, UtcDateTime, model_base

Base = model_base()


class Member(Base):
    __tablename__ = "members"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    card_number: Mapped[str] = mapped_column(String(20), unique=True)
    referral_code: Mapped[str] = mapped_column(String(12), unique=True)
    referred_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("members.id"), index=True)

    full_name: Mapped[str | None] = mapped_column(Encrypted("members.full_name"))
    name_index: Mapped[str | None] = mapped_column(String(40), index=True)
    name_birth_index: Mapped[str | None] = mapped_column(String(40), index=True)
    phone: Mapped[str | None] = mapped_column(Encrypted("members.phone"))
    phone_index: Mapped[str | None] = mapped_column(String(40), unique=True)
    email: Mapped[str | None] = mapped_column(Encrypted("members.email"))
    birth_date: Mapped[str | None] = mapped_column(Encrypted("members.birth_date"))  # ISO date
    birth_mmdd: Mapped[str | None] = mapped_column(String(5))
    gender: Mapped[str] = mapped_column(String(16), default="undisclosed")
    document_type: Mapped[str | None] = mapped_column(String(24))
    document_number: Mapped[str | None] = mapped_column(Encrypted("members.document_number"))
    document_index: Mapped[str | None] = mapped_column(String(40), unique=True)
    wechat_openid: Mapped[str | None] = mapped_column(Encrypted("members.wechat_openid"))
    line_user_id: Mapped[str | None] = mapped_column(Encrypted("members.line_user_id"))

    preferred_language: Mapped[str] = mapped_column(String(8))
    consent_sms: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_email: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_wechat: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_line: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_marketing: Mapped[bool] = mapped_column(Boolean, default=False)
    consents_updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    home_branch: Mapped[str] = mapped_column(String(16), index=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    tier: Mapped[str] = mapped_column(String(24), default="standard")
    source: Mapped[str] = mapped_column(String(16), default="desk")
    enrolled_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")  # +1 per change of details

    # the member's standing in the tier programme (see services/members/rules/tiers.py)
    tier_since: Mapped[datetime | None] = mapped_column(UtcDateTime)
    tier_review_on: Mapped[date | None] = mapped_column(Date)  # next yearly review (local day); None: never
    tier_pending: Mapped[str | None] = mapped_column(String(24))  # the tier a review notice announced ...
    tier_pending_on: Mapped[date | None] = mapped_column(Date)  # ... and the day it takes effect
    merged_into_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("members.id"))

    __table_args__ = (
        Index("ix_members_enrolled", "enrolled_at", "id"),
        Index("ix_members_birthday", "birth_mmdd", "id"),  # daily birthday scans, page by id
        Index("ix_members_tier_review", "tier_review_on", "id"),  # the daily review: due members only
        Index("ix_members_tier_pending", "tier_pending_on", "id", postgresql_where=text("tier_pending_on IS NOT NULL"),
              sqlite_where=text("tier_pending_on IS NOT NULL")),
        Index("ix_members_tier", "tier"),  # tier distribution; may a programme drop a tier
        Index("ix_members_export", "updated_at", "id"),  # the warehouse's export (kit.exports)
    )


class MemberNameToken(Base):
    """One blind-indexed word of a member's name, for finding a member by part of the name."""

    __tablename__ = "member_name_tokens"

    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), primary_key=True)
    token_index: Mapped[str] = mapped_column(String(40), primary_key=True)

    __table_args__ = (Index("ix_member_name_tokens_token", "token_index", "member_id"),)


class MemberIdentifier(Base):
    """An identifier another system gives the member: (system URI, value), e.g. a HIS's medical record
    number under that HIS's system. One (system, value) is one member, held by the database. The value is
    personal (an MRN): encrypted, found through its blind index. The card number is not kept here: it is
    the identifier under the group's card system (``identities``)."""

    __tablename__ = "member_identifiers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.id"))
    system: Mapped[str] = mapped_column(String(200))
    value: Mapped[str] = mapped_column(Encrypted("member_identifiers.value"))
    value_index: Mapped[str] = mapped_column(String(40))
    added_at: Mapped[datetime] = mapped_column(UtcDateTime)
    added_by: Mapped[str] = mapped_column(String(200))  # "<kind>:<subject> (<role>)"

    __table_args__ = (
        UniqueConstraint("system", "value_index", name="uq_member_identifiers_system_value"),
        Index("ix_member_identifiers_member", "member_id", "id"),
    )


class ProgrammeVersion(Base):
    """A version of the tier programme stored by a group admin; the newest one is in force."""

    __tablename__ = "programme_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    document: Mapped[str] = mapped_column(Text)  # JSON, as programme.programme_document gives it
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(200))  # "<kind>:<subject> (<role>)"


class MemberVisit(Base):
    """A visit as the tier and segment rules see it (from records' visit_completed / visit_refunded)."""

    __tablename__ = "member_visits"

    visit_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    member_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    branch: Mapped[str | None] = mapped_column(String(16))
    kind: Mapped[str | None] = mapped_column(String(16))
    day: Mapped[date] = mapped_column(Date)  # local day of completion (of the first refund until completed)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    completed: Mapped[bool] = mapped_column(Boolean, default=False)  # False: a refund arrived first
    qualifying_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    fully_refunded: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (Index("ix_member_visits_member_day", "member_id", "day"),)


class MemberVisitRefund(Base):
    """Each refund once (by the refund id), whatever event carried it."""

    __tablename__ = "member_visit_refunds"

    refund_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    visit_id: Mapped[str] = mapped_column(String(64))
    member_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    refunded_minor: Mapped[int] = mapped_column(BigInteger)
    full: Mapped[bool] = mapped_column(Boolean)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)


class MemberPoints(Base):
    """Points earned (positive) and reversals (negative, dated on the day of the posting they reverse)."""

    __tablename__ = "member_points"

    posting_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    member_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    day: Mapped[date] = mapped_column(Date)
    points: Mapped[int] = mapped_column(BigInteger)
    rule: Mapped[str | None] = mapped_column(String(24))
    reverses_posting_id: Mapped[str | None] = mapped_column(String(64), index=True)

    __table_args__ = (Index("ix_member_points_member_day", "member_id", "day"),)


class MemberTopUp(Base):
    """A stored-value top-up: its amount (without the bonus) counts as a single top-up for tiers."""

    __tablename__ = "member_top_ups"

    topup_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    member_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    day: Mapped[date] = mapped_column(Date)
    amount_minor: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_member_top_ups_member_day", "member_id", "day"),)


class MemberActivity(Base):
    """A member's visits summed over all time, kept current from member_visits (recency, usual interval)."""

    __tablename__ = "member_activity"

    member_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    visits_total: Mapped[int] = mapped_column(Integer, default=0)
    spend_total_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    first_visit_on: Mapped[date | None] = mapped_column(Date)
    last_visit_on: Mapped[date | None] = mapped_column(Date)
    first_paid_visit_on: Mapped[date | None] = mapped_column(Date)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class MemberWindow(Base):
    """A member's last 12 months summed as the tier rules count them (``windows.py``), for the programme preview:
    the sums over the local days ``window(computed_for)``, and the days that bound how long they stay true
    (the first activity day inside the window: it leaves; the first after ``computed_for``: it enters)."""

    __tablename__ = "member_windows"

    member_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    computed_for: Mapped[date] = mapped_column(Date)  # the window's last local day
    spend_minor: Mapped[int] = mapped_column(BigInteger)  # net of refunds, visits that count
    points: Mapped[int] = mapped_column(BigInteger)  # earned less reversed (may be below 0: read as 0)
    top_up_minor: Mapped[int] = mapped_column(BigInteger)  # the largest single top-up
    visits_first: Mapped[int] = mapped_column(Integer)  # visits that count, by kind (records' VISIT_KINDS)
    visits_return: Mapped[int] = mapped_column(Integer)
    visits_emergency: Mapped[int] = mapped_column(Integer)
    visits_free_clinic: Mapped[int] = mapped_column(Integer)
    visits_event: Mapped[int] = mapped_column(Integer)
    earliest_day: Mapped[date | None] = mapped_column(Date)  # the first day with activity in the window
    next_day: Mapped[date | None] = mapped_column(Date)  # the first day with activity after computed_for
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class TierChange(Base):
    """The tier history: every change of a member's tier, with its reason."""

    __tablename__ = "tier_changes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    member_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    from_tier: Mapped[str] = mapped_column(String(24))
    to_tier: Mapped[str] = mapped_column(String(24))
    direction: Mapped[str] = mapped_column(String(4))
    reason: Mapped[str] = mapped_column(String(24))
    source_ref: Mapped[str | None] = mapped_column(String(128))  # visit, top-up, posting, merge, review day
    note: Mapped[str | None] = mapped_column(String(500))
    actor: Mapped[str] = mapped_column(String(200))
    effective_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_tier_changes_member", "member_id", "id"),)


class QuotaUse(Base):
    """One use of a yearly quota (a free cleaning) for a visit; undone when the visit is cancelled."""

    __tablename__ = "quota_uses"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    member_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    benefit: Mapped[str] = mapped_column(String(40))
    visit_id: Mapped[str] = mapped_column(String(64))
    benefit_year: Mapped[int] = mapped_column(Integer)
    branch: Mapped[str | None] = mapped_column(String(16))
    used_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_by: Mapped[str] = mapped_column(String(200))
    undone_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    undone_by: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        UniqueConstraint("member_id", "benefit", "visit_id", name="uq_quota_uses_member_benefit_visit"),
        Index("ix_quota_uses_member_year", "member_id", "benefit_year", "benefit"),
        Index("ix_quota_uses_visit", "visit_id"),
    )


class MemberSegment(Base):
    """A member's segment, RFM scores and churn risk, as the last nightly run graded them."""

    __tablename__ = "member_segments"

    member_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    home_branch: Mapped[str] = mapped_column(String(16))  # copied, so that a branch's list is one index scan
    segment: Mapped[str] = mapped_column(String(1))
    rfm_r: Mapped[int] = mapped_column(Integer)
    rfm_f: Mapped[int] = mapped_column(Integer)
    rfm_m: Mapped[int] = mapped_column(Integer)
    churn_risk: Mapped[bool] = mapped_column(Boolean)
    usual_interval_days: Mapped[int | None] = mapped_column(Integer)
    last_visit_on: Mapped[date | None] = mapped_column(Date)
    changed_on: Mapped[date] = mapped_column(Date)  # the night that last changed this row

    __table_args__ = (
        Index("ix_member_segments_list", "segment", "member_id"),
        Index("ix_member_segments_branch_list", "segment", "home_branch", "member_id"),
    )


class MemberMerge(Base):
    """A merge of two members, with what it moved, so that it can be audited and reversed."""

    __tablename__ = "member_merges"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    survivor_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    merged_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    reason: Mapped[str] = mapped_column(String(500))
    record: Mapped[str] = mapped_column(Text)  # JSON: the moved rows' ids and the states before
    merged_at: Mapped[datetime] = mapped_column(UtcDateTime)
    merged_by: Mapped[str] = mapped_column(String(200))
    reversed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    reversed_by: Mapped[str | None] = mapped_column(String(200))
    reverse_reason: Mapped[str | None] = mapped_column(String(500))


class MemberStatusChange(Base):
    """The audit of freezes, reactivations and closures (who, when, why)."""

    __tablename__ = "member_status_changes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    member_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    from_status: Mapped[str] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(500))
    actor: Mapped[str] = mapped_column(String(200))
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Family(Base):
    """A family account: its contact person (the guardian of its minors) and its home branch."""

    __tablename__ = "families"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    contact_member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.id"), index=True)
    home_branch: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(200))
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # the last member left


class FamilyMember(Base):
    """A member's place in a family (one family at most): contact, adult or minor."""

    __tablename__ = "family_members"

    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.id"), primary_key=True)
    family_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("families.id"), index=True)
    relation: Mapped[str] = mapped_column(String(12))
    linked_at: Mapped[datetime] = mapped_column(UtcDateTime)
    linked_by: Mapped[str] = mapped_column(String(200))


class FamilyChange(Base):
    """The audit of a family: created, each member linked and unlinked (who, when, why)."""

    __tablename__ = "family_changes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    family_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("families.id"), index=True)
    member_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    action: Mapped[str] = mapped_column(String(16))  # created, linked, unlinked
    relation: Mapped[str | None] = mapped_column(String(12))
    reason: Mapped[str | None] = mapped_column(String(500))
    actor: Mapped[str] = mapped_column(String(200))
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime)
