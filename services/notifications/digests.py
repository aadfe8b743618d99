"""Summary messages: many facts, one message (the daily points digest, one expiry warning per date).

Each fact is an item counted once (by posting or lot id); items attach to the summary delivery still
queued for their slot. A digest already sent for a slot is never sent again: a late posting goes into
the next day's digest, a late lot of an already-warned date is kept without a second warning.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.notifications import deliveries
from services.notifications.models import QUEUED, Delivery, DigestItem
from services.notifications.rules import journeys
from services.notifications.rules.sending import at_local
from services.notifications.settings import Settings

EARNED, EXPIRING = "points_earned", "points_expiring"
MAX_DAYS_AHEAD = 7  # a posting never waits more than this for a digest slot


def _seen(session: Session, kind: str, ref: str) -> bool:
    return session.scalars(select(DigestItem.id).where(DigestItem.kind == kind, DigestItem.item_ref == ref)).first() \
        is not None


def _queued(session: Session, dedupe_key: str) -> Delivery | None | bool:
    """The summary delivery of a slot (locked) if still queued; False if it already went; None if none yet."""
    row = session.scalars(select(Delivery).where(Delivery.dedupe_key == dedupe_key).with_for_update()).first()
    if row is None:
        return None
    return row if row.state == QUEUED else False


def points_earned(session: Session, event: dict[str, Any], now: datetime, settings: Settings, zone: ZoneInfo) -> bool:
    """Count a posting (points' ``points_earned``) into its member's daily digest; False if it was counted before."""
    points, posting, member_id = event["points"], event["posting_id"], event["member_id"]
    if _seen(session, EARNED, posting):
        return False
    day, due = journeys.digest_slot(event["earned_at"], settings, zone)
    for _ in range(MAX_DAYS_AHEAD):
        plan = journeys.points_digest(str(member_id), day, due, zone)
        found = _queued(session, plan.dedupe_key)
        if found is None:
            found = deliveries.queue(session, plan, now) or _queued(session, plan.dedupe_key)
        if found:
            session.add(DigestItem(kind=EARNED, item_ref=posting, member_id=member_id,
                                   delivery_id=found.id, points=points, recorded_at=now))
            return True
        day += timedelta(days=1)
        due = at_local(day, settings.digest_time, zone)
    return False


def points_expiring(session: Session, event: dict[str, Any], now: datetime, settings: Settings,
                    zone: ZoneInfo) -> bool:
    """Add a lot (points' ``points_expiring``) to its member's warning for that expiry date (one warning per date)."""
    points, lot = event["points"], event["lot_id"]
    if _seen(session, EXPIRING, lot):
        return False
    plan = journeys.points_expiring(event, now, settings, zone)
    found = _queued(session, plan.dedupe_key)
    if found is None:
        found = deliveries.queue(session, plan, now) or _queued(session, plan.dedupe_key)
    session.add(DigestItem(kind=EXPIRING, item_ref=lot, member_id=event["member_id"],
                           delivery_id=found.id if found else None, points=points, recorded_at=now))
    return bool(found)


def totals(session: Session, delivery_id: uuid.UUID) -> tuple[int, int]:
    """(points, items) gathered into a summary delivery, read when it is rendered."""
    points, count = session.execute(select(func.coalesce(func.sum(DigestItem.points), 0), func.count(DigestItem.id))
                                    .where(DigestItem.delivery_id == delivery_id)).one()
    return int(points), int(count)
