"""The gateway's own tables: credentials of people and systems, and the request bookkeeping the front
door needs (idempotent replies, webhook receipts, sign-in throttles, the security log). Nothing of the
domain lives here."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from services.kit.crypto import Encrypted
from services.kit.models import BigId, UtcDateTime, model_base

Base = model_base()


class ApiKey(Base):
    """A system's credential (HIS, billing, the member app, monitoring). Only a hash is kept.

    Rotation issues a new key of the same ``family`` and lets the old one run until an overlap ends, so
    the system can switch without downtime. ``permissions`` (comma-separated) narrows what the key may do
    below its role; empty means everything the role may do."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    key_id: Mapped[str] = mapped_column(String(16), unique=True)  # the public part, to find the row
    secret_hash: Mapped[str] = mapped_column(String(64))  # SHA-256 of the secret part (high entropy)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(32))
    branches: Mapped[str] = mapped_column(String(400))  # comma-separated branch codes, or "*"
    permissions: Mapped[str | None] = mapped_column(Text, nullable=True)
    family: Mapped[str | None] = mapped_column(String(16), nullable=True, index=True)  # first key_id
    rotated_from: Mapped[str | None] = mapped_column(String(16), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class StaffUser(Base):
    """A person who signs in: one role, the branches they work at, an Argon2 password hash."""

    __tablename__ = "staff_users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    username: Mapped[str] = mapped_column(String(64), unique=True)  # lower case
    display_name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(32))
    branches: Mapped[str] = mapped_column(String(400))
    password_hash: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="active")  # active, disabled
    password_change_required: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    password_changed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(80), nullable=True)

    __table_args__ = (Index("ix_staff_users_created", "created_at", "id"),)


class StaffSession(Base):
    """One sign-in: access tokens name it (``sid``); its refresh tokens rotate inside it."""

    __tablename__ = "staff_sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)  # absolute end, however often refreshed
    refreshed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revoked_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)


class RefreshToken(Base):
    """A refresh token, by its SHA-256 only. Used once: a second use means it was stolen."""

    __tablename__ = "staff_refresh_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_sessions.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class LoginThrottle(Base):
    """Failed sign-ins per account name or per address (both by keyed hash), and the lock they caused."""

    __tablename__ = "login_throttles"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(16))  # account, address
    subject: Mapped[str] = mapped_column(String(64))  # blind index of the user name or address
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    __table_args__ = (UniqueConstraint("scope", "subject", name="uq_login_throttles_scope_subject"),)


class WebhookIntegration(Base):
    """A system that pushes to webhook routes, proving itself with an HMAC signature of each request."""

    __tablename__ = "webhook_integrations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # slug, sent as X-CareLoop-Integration
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(32))
    branches: Mapped[str] = mapped_column(String(400))
    permissions: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class WebhookSecret(Base):
    """A signing secret of an integration, encrypted at rest; two are valid while one is rotated out."""

    __tablename__ = "webhook_secrets"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    integration_id: Mapped[str] = mapped_column(ForeignKey("webhook_integrations.id", ondelete="CASCADE"),
                                                index=True)
    secret: Mapped[str] = mapped_column(Encrypted("webhook_secrets.secret"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class WebhookReceipt(Base):
    """Signatures seen inside the freshness window: the same signed request twice is a replay."""

    __tablename__ = "webhook_receipts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    integration_id: Mapped[str] = mapped_column(String(64))
    signature_hash: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)

    __table_args__ = (UniqueConstraint("integration_id", "signature_hash", name="uq_webhook_receipts_signature"),)


class IdempotentReply(Base):
    """The answer to a mutating request, by credential and ``Idempotency-Key``; encrypted (it may name
    a patient). A row without ``status`` is a request still running."""

    __tablename__ = "idempotent_replies"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(80))  # the credential (an API key family, a user, ...)
    key: Mapped[str] = mapped_column(String(128))
    fingerprint: Mapped[str] = mapped_column(String(64))  # SHA-256 of method, path and body
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    body: Mapped[str | None] = mapped_column(Encrypted("idempotent_replies.body"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    __table_args__ = (UniqueConstraint("scope", "key", name="uq_idempotent_replies_scope_key"),)


class SecurityEvent(Base):
    """The gateway's audit trail: sign-ins, lockouts, sessions, staff and credential changes."""

    __tablename__ = "security_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    actor: Mapped[str | None] = mapped_column(String(80), nullable=True)  # who did it (identity subject)
    target: Mapped[str | None] = mapped_column(String(80), nullable=True)  # whom or what it concerned
    address: Mapped[str | None] = mapped_column(Encrypted("security_events.address"), nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="{}")  # JSON; never a secret
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (Index("ix_security_events_occurred", "occurred_at", "id"),)


class MemberSignInCode(Base):
    """A one-time code asked for on the member page: a keyed hash of the code only, its phone and address
    by keyed hash (for the per-phone and per-address limits), the member it signs in (None when the phone
    is no member's: a challenge is made all the same, so the answer never tells), single use, expiring."""

    __tablename__ = "member_sign_in_codes"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    member_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    phone_hash: Mapped[str] = mapped_column(String(64))
    address_hash: Mapped[str] = mapped_column(String(64))
    code_hash: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    __table_args__ = (Index("ix_member_sign_in_codes_phone", "phone_hash", "created_at"),
                      Index("ix_member_sign_in_codes_address", "address_hash", "created_at"))


class MemberSession(Base):
    """A member signed in on the member page (``/m/``): its cookie names this row; sign-out ends it."""

    __tablename__ = "member_sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    member_id: Mapped[str] = mapped_column(String(36), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
