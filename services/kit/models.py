"""The kit's own tables, present in every service's database (migrated by ``services/kit/migrations``).

- ``kit_outbox``: events written in the same transaction as the change that caused them.
- ``kit_inbox``: the events each handler has applied, written in the same transaction as the effect.
- ``kit_idempotency``: the stored answer of each mutating command, by its idempotency key.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, Integer, MetaData, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Constraint names every service's metadata uses, so that migrations name things the same way."""

# SQLite only auto-increments INTEGER PRIMARY KEY; BigInteger elsewhere.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every backend (SQLite stores it naive, we give it back aware)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use kit.clock.utcnow()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def model_base() -> type[DeclarativeBase]:
    """A declarative base of a service's own (its own metadata), naming constraints as every service does::

        Base = model_base()
    """

    class Base(DeclarativeBase):
        metadata = MetaData(naming_convention=NAMING)

    return Base


KitBase = model_base()


class OutboxEvent(KitBase):
    __tablename__ = "kit_outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)  # JSON, as it goes on the wire
    headers: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        # the relay reads only unsent rows: keep that index as small as the backlog
        Index("ix_kit_outbox_unsent", "id", postgresql_where=text("sent_at IS NULL"),
              sqlite_where=text("sent_at IS NULL")),
        Index("ix_kit_outbox_sent_at", "sent_at"),
    )


class InboxEntry(KitBase):
    __tablename__ = "kit_inbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    consumer: Mapped[str] = mapped_column(String(128))  # "<service>.<handler method>"
    event_id: Mapped[str] = mapped_column(String(64))
    handled_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (UniqueConstraint("consumer", "event_id", name="uq_kit_inbox_consumer_event"),)


class IdempotentCommand(KitBase):
    __tablename__ = "kit_idempotency"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    command: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(128))
    request_hash: Mapped[str] = mapped_column(String(64))
    response: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (UniqueConstraint("command", "key", name="uq_kit_idempotency_command_key"),)


class JobRun(KitBase):
    """Progress of a batch job (nightly review, expiry, scans) for one run key (usually a local day)."""

    __tablename__ = "kit_job_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(64))
    run_key: Mapped[str] = mapped_column(String(64))
    cursor: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON: where the next batch starts
    processed: Mapped[int] = mapped_column(BigInteger, default=0)
    batches: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    __table_args__ = (UniqueConstraint("job", "run_key", name="uq_kit_job_runs_job_run_key"),)
