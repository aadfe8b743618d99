"""Deliveries: recording what is to be sent to whom and why, once per cause."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.kit.clock import isoformat
from services.kit.errors import Invalid
from services.kit.paging import keyset_page
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
    """A member's messages, newest first."""
    try:
        member = uuid.UUID(str(member_id))
    except ValueError:
        raise Invalid("Not a member id.", {"member_id": ["Not a valid id."]}) from None
    query = select(Delivery).where(Delivery.member_id == member)
    return keyset_page(session, query, Delivery.created_at, Delivery.id, limit, cursor, descending=True)


def view(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": str(delivery.id), "member_id": str(delivery.member_id), "journey": delivery.journey,
        "channel": delivery.channel, "state": delivery.state, "reason": delivery.reason,
        "due_at": isoformat(delivery.due_at), "created_at": isoformat(delivery.created_at),
        "updated_at": isoformat(delivery.updated_at),
    }
