"""The members service's tables. Personal fields are encrypted; lookups go through blind indexes."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, MetaData, String, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.kit.crypto import Encrypted
from services.kit.db import UtcDateTime
from services.kit.models import NAMING


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


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

    __table_args__ = (
        Index("ix_members_enrolled", "enrolled_at", "id"),
        Index("ix_members_birthday", "birth_mmdd", "id"),  # daily birthday scans, page by id
    )


class MemberNameToken(Base):
    """One blind-indexed word of a member's name, for finding a member by part of the name."""

    __tablename__ = "member_name_tokens"

    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), primary_key=True)
    token_index: Mapped[str] = mapped_column(String(40), primary_key=True)

    __table_args__ = (Index("ix_member_name_tokens_token", "token_index", "member_id"),)
