"""Deliveries: what is to be sent to whom and why (once per cause), where each one is, and its history."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import Uuid, bindparam, select, text, update
from sqlalchemy.orm import Session

from services.kit.clock import isoformat
from services.kit.commit import AtCommit, at_commit
from services.kit.db import dialect_insert, fetch, prepared
from services.kit.errors import Invalid
from services.kit.models import UtcDateTime
from services.kit.paging import keyset_page
from services.kit.telemetry import counter
from services.notifications.models import (
    CANCELLED,
    DELIVERED,
    QUEUED,
    SENDING,
    SENT,
    STATES,
    Delivery,
)
from services.notifications.rules.journeys import JOURNEYS, Plan

QUEUED_TOTAL = counter("careloop_notifications_queued_total", "Messages queued, by journey", ("journey",))


def parse_uuid(value: Any, field: str = "member_id") -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise Invalid(f"Not a valid {field.replace('_', ' ')}.", {field: ["Not a valid id."]}) from None


ROW_COLUMNS = ("id", "member_id", "journey", "dedupe_key", "channel", "requested_channel", "state", "reason", "due_at",
               "first_due_at", "expires_at", "created_at", "updated_at", "attempts", "category", "cause_ref", "context")
"""The columns ``row_of`` fills."""


def row_of(plan: Plan, now: datetime) -> dict[str, Any]:
    """The ``deliveries`` row a plan becomes (queued, due when the journey wants it)."""
    return {
        "id": uuid.uuid4(), "member_id": parse_uuid(plan.member_id), "journey": plan.journey,
        "dedupe_key": plan.dedupe_key, "channel": plan.channel, "requested_channel": plan.channel,
        "state": QUEUED, "reason": None, "due_at": plan.due_at, "first_due_at": plan.due_at,
        "expires_at": plan.expires_at, "created_at": now, "updated_at": now, "attempts": 0,
        "category": plan.category, "cause_ref": plan.cause_ref,
        "context": json.dumps(plan.context, separators=(",", ":"), sort_keys=True),
    }


def insert_unless(table: Any, columns: tuple[str, ...], conflict: str, prefix: str, returning: str | None = None
                   ) -> Any:
    """``INSERT … ON CONFLICT (conflict) DO NOTHING [RETURNING]`` of ``columns`` as text, built once by its caller:
    SQLAlchemy's dialect inserts with ``on_conflict_do_nothing`` are compiled again at every execution (they
    have no cache key); a text statement is compiled once. Binds ``:<prefix><column>`` carry the columns' types."""
    sql = (f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join(f':{prefix}{c}' for c in columns)}) "
           f"ON CONFLICT ({conflict}) DO NOTHING" + (f" RETURNING {returning}" if returning else ""))
    statement = text(sql).bindparams(*(bindparam(f"{prefix}{c}", type_=table.c[c].type) for c in columns))
    return statement.columns(table.c[returning]) if returning else statement


_QUEUE = prepared(insert_unless(Delivery.__table__, ROW_COLUMNS, "dedupe_key", "v_", returning="id"))  # a day's digest


def queue_id(session: Session, plan: Plan, now: datetime) -> uuid.UUID | None:
    """Queue a message for its cause: its id, or None if this cause already has its message.

    ``INSERT .. ON CONFLICT DO NOTHING``: a twin inserted at the same moment by another worker makes this
    one wait for it and then insert nothing, instead of failing the whole transaction.
    """
    row = row_of(plan, now)
    inserted = session.execute(_QUEUE, {f"v_{name}": value for name, value in row.items()}).scalar()
    if inserted is not None:
        queued(session, inserted, plan, now)
    return inserted


def queued(session: Session, delivery_id: uuid.UUID, plan: Plan, now: datetime) -> None:
    """What follows a delivery's insert: its first step (with the commit), its count."""
    add_step(session, delivery_id, QUEUED, now, detail=f"due {isoformat(plan.due_at)}")
    QUEUED_TOTAL.labels(plan.journey).inc()


def queue(session: Session, plan: Plan, now: datetime, answer: bool = True) -> Delivery | None:
    """Queue a message for its cause; None if this cause already has its message (or ``answer`` is false: the
    caller needs no row back, and is spared reading it)."""
    inserted = queue_id(session, plan, now)
    return session.get(Delivery, inserted) if answer and inserted is not None else None


def queue_many(session: Session, plans: list[Plan], now: datetime) -> int:
    """Queue many plans in one statement (scans); causes that already have a message are skipped."""
    if not plans:
        return 0
    insert = dialect_insert(session, Delivery)
    rows = [row_of(plan, now) for plan in plans]
    statement = insert.values(rows).on_conflict_do_nothing(index_elements=["dedupe_key"])
    inserted = set(session.scalars(statement.returning(Delivery.id)))
    for journey, count in Counter(row["journey"] for row in rows if row["id"] in inserted).items():
        QUEUED_TOTAL.labels(journey).inc(count)
    return len(inserted)


_ADD_STEP = AtCommit("INSERT INTO delivery_steps (delivery_id, at, state, channel, detail, provider_id) "
                     "VALUES (:delivery_id, :at, :state, :channel, :detail, :provider_id)",
                     prepare=True, delivery_id=Uuid(), at=UtcDateTime())  # every step of every delivery


def add_step(session: Session, delivery_id: uuid.UUID, state: str, at: datetime, channel: str | None = None,
             detail: str | None = None, provider_id: str | None = None) -> None:
    """A step of a delivery's history, written with the commit (``kit.commit``: nothing reads it back in the
    transaction; on PostgreSQL it travels with the ``COMMIT``)."""
    at_commit(session, _ADD_STEP, {"delivery_id": delivery_id, "at": at, "state": state, "channel": channel,
                                   "detail": detail, "provider_id": provider_id})


def cancel_queued(session: Session, now: datetime, reason: str, *, cause_ref: str | None = None,
                  member_id: uuid.UUID | None = None, journeys: tuple[str, ...] | None = None,
                  state: str = CANCELLED, cause_ref_prefix: str | None = None) -> int:
    """Take back the queued messages of a cause (or of causes sharing a prefix: a composed journey's runs, or of
    a member): cancelled, or suppressed with a reason."""
    query = select(Delivery).where(Delivery.state == QUEUED)
    if cause_ref is not None:
        query = query.where(Delivery.cause_ref == cause_ref)
    if cause_ref_prefix is not None:
        query = query.where(Delivery.cause_ref.startswith(cause_ref_prefix, autoescape=True))
    if member_id is not None:
        query = query.where(Delivery.member_id == member_id)
    if journeys:
        query = query.where(Delivery.journey.in_(journeys))
    rows = list(session.scalars(query.with_for_update()))
    for delivery in rows:
        delivery.state, delivery.reason, delivery.updated_at = state, reason, now
        add_step(session, delivery.id, state, now, detail=reason)
    return len(rows)


def cancel(session: Session, delivery_id: str, reason: str, now: datetime) -> Delivery:
    """Cancel one message that has not gone yet (staff); a message already sent cannot be taken back."""
    delivery = get(session, delivery_id, lock=True)
    if delivery.state != QUEUED:
        raise Invalid(f"This message is {delivery.state} and can no longer be cancelled.",
                      {"state": [f"Only queued messages can be cancelled; this one is {delivery.state}."]})
    session.execute(update(Delivery).where(Delivery.id == delivery.id)
                    .values(state=CANCELLED, reason=reason, updated_at=now))
    add_step(session, delivery.id, CANCELLED, now, detail=reason)
    session.refresh(delivery)
    return delivery


def get(session: Session, delivery_id: str, lock: bool = False) -> Delivery:
    return fetch(session, Delivery, delivery_id, "message", lock=lock)


def by_dedupe_key(session: Session, dedupe_key: str) -> Delivery:
    return session.scalars(select(Delivery).where(Delivery.dedupe_key == dedupe_key)).one()


def went_out(session: Session, dedupe_key: str) -> bool:
    """Whether the message of this cause was handed to a channel (or is being): sent, delivered, sending."""
    state = session.scalars(select(Delivery.state).where(Delivery.dedupe_key == dedupe_key)).first()
    return state in (SENDING, SENT, DELIVERED)


def history(session: Session, member_id: str, limit: int, cursor: str | None, journey: str | None = None,
            state: str | None = None) -> tuple[list[Delivery], str | None]:
    """A member's messages, newest first (optionally of one journey or in one state)."""
    query = select(Delivery).where(Delivery.member_id == parse_uuid(member_id))
    if journey is not None:
        if journey not in JOURNEYS:
            raise Invalid(f"Unknown journey {journey!r}.", {"journey": ["Unknown journey."]})
        query = query.where(Delivery.journey == journey)
    if state is not None:
        if state not in STATES:
            raise Invalid(f"Unknown state {state!r}.", {"state": [f"One of {', '.join(STATES)}."]})
        query = query.where(Delivery.state == state)
    return keyset_page(session, query, Delivery.created_at, Delivery.id, limit, cursor, descending=True)


