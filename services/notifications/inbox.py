"""The member's in-app inbox: read it page by page, mark messages read; erased with the member."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from services.kit.errors import NotFound
from services.kit.paging import keyset_page
from services.notifications.deliveries import parse_uuid
from services.notifications.models import Delivery, InboxMessage


def page(session: Session, member_id: str, limit: int, cursor: str | None,
         unread_only: bool = False) -> tuple[list[InboxMessage], str | None, int]:
    """A page of the member's messages, newest first, and how many are unread in all."""
    member = parse_uuid(member_id)
    query = select(InboxMessage).where(InboxMessage.member_id == member)
    if unread_only:
        query = query.where(InboxMessage.read_at.is_(None))
    rows, next_cursor = keyset_page(session, query, InboxMessage.created_at, InboxMessage.id, limit, cursor,
                                    descending=True)
    unread = session.scalar(select(func.count(InboxMessage.id)).where(
        InboxMessage.member_id == member, InboxMessage.read_at.is_(None))) or 0
    return rows, next_cursor, int(unread)


def mark_read(session: Session, member_id: str, message_id: str, now: datetime) -> InboxMessage:
    member, message = parse_uuid(member_id), parse_uuid(message_id, "message_id")
    row = session.scalars(select(InboxMessage).where(InboxMessage.id == message,
                                                     InboxMessage.member_id == member)).first()
    if row is None:
        raise NotFound(f"No message {message_id} in this member's inbox.")
    if row.read_at is None:
        row.read_at = now
    return row


def erase(session: Session, member_id: uuid.UUID) -> int:
    """A closed membership (erasure request): what was shown to the member goes."""
    return session.execute(delete(InboxMessage).where(InboxMessage.member_id == member_id)).rowcount or 0


def move(session: Session, from_id: uuid.UUID, to_id: uuid.UUID) -> None:
    session.execute(update(InboxMessage).where(InboxMessage.member_id == from_id).values(member_id=to_id))


def move_back(session: Session, merged_id: uuid.UUID, survivor_id: uuid.UUID) -> None:
    """An unmerge: the messages sent to the merged member (by their deliveries) return to them."""
    sent_to_merged = select(Delivery.id).where(Delivery.member_id == merged_id)
    session.execute(update(InboxMessage).where(InboxMessage.member_id == survivor_id,
                                               InboxMessage.delivery_id.in_(sent_to_merged))
                    .values(member_id=merged_id))

