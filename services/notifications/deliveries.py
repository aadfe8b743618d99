"""Deliveries: recording what is to be sent to whom and why, once per cause."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from services.kit.clock import isoformat
from services.kit.errors import Invalid
from services.kit.schemas import decode_cursor, encode_cursor
from services.notifications.models import Delivery


def queue(session: Session, member_id: str, journey: str, cause: str, due_at: datetime,
          now: datetime) -> Delivery | None:
    """Queue a message for ``cause``; None if this cause already has its message."""
    key = f"{journey}:{cause}"
    if session.scalars(select(Delivery.id).where(Delivery.dedupe_key == key)).first() is not None:
        return None
    delivery = Delivery(id=uuid.uuid4(), member_id=uuid.UUID(member_id), journey=journey, dedupe_key=key,
                        state="queued", due_at=due_at, created_at=now, updated_at=now, attempts=0)
    session.add(delivery)
    return delivery


def history(session: Session, member_id: str, limit: int, cursor: str | None) -> tuple[list[Delivery], str | None]:
    try:
        member = uuid.UUID(str(member_id))
    except ValueError:
        raise Invalid("Not a member id.", {"member_id": ["Not a valid id."]}) from None
    query = select(Delivery).where(Delivery.member_id == member)
    after = decode_cursor(cursor)
    if after is not None:
        try:
            moment = datetime.fromisoformat(after["t"].replace("Z", "+00:00"))
            last = uuid.UUID(after["id"])
        except (KeyError, TypeError, ValueError):
            raise Invalid("The page cursor is not valid.", {"cursor": ["Not a valid cursor."]}) from None
        query = query.where(or_(Delivery.created_at < moment,
                                and_(Delivery.created_at == moment, Delivery.id < last)))
    rows = list(session.scalars(query.order_by(Delivery.created_at.desc(), Delivery.id.desc()).limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor({"t": isoformat(rows[-1].created_at), "id": str(rows[-1].id)})


def view(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": str(delivery.id), "member_id": str(delivery.member_id), "journey": delivery.journey,
        "channel": delivery.channel, "state": delivery.state, "reason": delivery.reason,
        "due_at": isoformat(delivery.due_at), "created_at": isoformat(delivery.created_at),
        "updated_at": isoformat(delivery.updated_at),
    }
