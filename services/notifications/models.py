"""The notifications service's tables (first piece: deliveries; journeys and channels come next)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Index, Integer, MetaData, String, Text, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.kit.db import UtcDateTime
from services.kit.models import NAMING


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Delivery(Base):
    """One message to one member for one cause, and where it is in its life."""

    __tablename__ = "deliveries"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    member_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    journey: Mapped[str] = mapped_column(String(48))
    # journey + cause (+ channel once chosen): the same cause never yields a second message
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    channel: Mapped[str | None] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default="queued")
    reason: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        Index("ix_deliveries_member", "member_id", "created_at"),
        Index("ix_deliveries_due", "state", "due_at"),
    )
