"""Who may be greeted on festivals and seasons: our copy of every member's status, fed by members' events.

A festival reaches every active member; asking members for all of them each time would copy the whole
register over RPC, so notifications keeps the little it needs (id, home branch, status) from
``member_enrolled``, ``member_status_changed`` and ``member_merged``.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.kit.insert_batch import insert_rows
from services.notifications.models import AudienceMember


def enrolled(session: Session, member_id: uuid.UUID, home_branch: str | None, now: datetime) -> None:
    row = session.get(AudienceMember, member_id)
    if row is None:
        session.add(AudienceMember(member_id=member_id, home_branch=home_branch, status="active", updated_at=now))


def enrolled_many(session: Session, members: list[tuple[uuid.UUID, str | None]], now: datetime) -> None:
    """``enrolled`` of each (member id, home branch) of an import's batch, in one statement (members already
    known are left as they are)."""
    rows = {member_id: {"member_id": member_id, "home_branch": home_branch, "status": "active", "updated_at": now}
            for member_id, home_branch in reversed(members)}  # a member twice: the first, as one by one
    insert_rows(session, AudienceMember.__table__, list(rows.values()), skip_conflicts_on=("member_id",))


def set_status(session: Session, member_id: uuid.UUID, status: str, now: datetime) -> None:
    row = session.get(AudienceMember, member_id, with_for_update=True)
    if row is None:
        session.add(AudienceMember(member_id=member_id, home_branch=None, status=status, updated_at=now))
    else:
        row.status, row.updated_at = status, now


def active_page(session: Session, after: str | None, limit: int) -> list[AudienceMember]:
    """Active members in id order, after the id ``after`` (a scan's cursor)."""
    query = select(AudienceMember).where(AudienceMember.status == "active")
    if after:
        query = query.where(AudienceMember.member_id > uuid.UUID(after))
    return list(session.scalars(query.order_by(AudienceMember.member_id).limit(limit)))
