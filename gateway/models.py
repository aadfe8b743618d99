"""The gateway's own tables: credentials of people and systems (nothing of the domain)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import MetaData, String, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.kit.db import UtcDateTime
from services.kit.models import NAMING


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ApiKey(Base):
    """A system's credential (HIS, billing, the member app, monitoring). Only a hash is kept."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    key_id: Mapped[str] = mapped_column(String(16), unique=True)  # the public part, to find the row
    secret_hash: Mapped[str] = mapped_column(String(64))  # SHA-256 of the secret part (high entropy)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(32))
    branches: Mapped[str] = mapped_column(String(400))  # comma-separated branch codes, or "*"
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
