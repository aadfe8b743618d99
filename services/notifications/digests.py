"""Summary messages: many facts, one message (the daily points digest, one expiry warning per date).

Each fact is an item counted once (by posting or lot id); items attach to the summary delivery still
queued for their slot. A digest already sent for a slot is never sent again: a late posting goes into
the next day's digest, a late lot of an already-warned date is kept without a second warning.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Boolean, Uuid, bindparam, func, select, text
from sqlalchemy.orm import Session

from services.kit.commit import AtCommit, at_commit
from services.kit.db import prepared
from services.kit.models import UtcDateTime
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


_ATTACH = prepared(text(
    "WITH slot AS (SELECT id FROM deliveries WHERE dedupe_key = :dedupe_key AND state = 'queued' FOR UPDATE), "
    "added AS (INSERT INTO digest_items (kind, item_ref, member_id, delivery_id, points, recorded_at) "
    "SELECT :kind, :item_ref, :member_id, slot.id, :points, :recorded_at FROM slot "
    "ON CONFLICT (kind, item_ref) DO NOTHING RETURNING delivery_id) "
    "SELECT (SELECT delivery_id FROM added) AS attached, "
    "EXISTS (SELECT 1 FROM digest_items WHERE kind = :kind AND item_ref = :item_ref) AS seen"
).bindparams(bindparam("member_id", type_=Uuid()), bindparam("recorded_at", type_=UtcDateTime())
             ).columns(attached=Uuid(), seen=Boolean()))
"""PostgreSQL: a posting attached to its slot's digest if that is queued (locked, as ``_queued`` does), in one
query; with whether it was counted before (the snapshot before the insert). Prepared per connection, as
``_ATTACH_ALL`` and ``_ADD_ITEM`` (``kit.db.prepared``): a paid visit's postings run them."""
_ADD_ITEM = AtCommit("INSERT INTO digest_items (kind, item_ref, member_id, delivery_id, points, recorded_at) "
                     "VALUES (:kind, :item_ref, :member_id, :delivery_id, :points, :recorded_at)",
                     prepare=True, member_id=Uuid(), delivery_id=Uuid(), recorded_at=UtcDateTime())


def points_earned(session: Session, event: dict[str, Any], now: datetime, settings: Settings, zone: ZoneInfo) -> bool:
    """Count a posting (points' ``points_earned``) into its member's daily digest; False if it was counted before.

    On PostgreSQL the usual case — the day's digest already queued by an earlier posting — is one query
    (``_ATTACH``); the day's first posting queues the digest and adds its item with the commit."""
    points, posting, member_id = event["points"], event["posting_id"], event["member_id"]
    day, due = journeys.digest_slot(event["earned_at"], settings, zone)
    item = {"kind": EARNED, "item_ref": posting, "member_id": member_id, "points": points, "recorded_at": now}
    slot_absent = False  # known: the first slot has no queued digest (as of this transaction's last read)
    if session.get_bind().dialect.name == "postgresql":
        attached, seen = session.execute(_ATTACH, {**item, "dedupe_key": journeys.points_digest(
            str(member_id), day, due, zone).dedupe_key}).one()
        if attached is not None or seen:
            return attached is not None
        slot_absent = True
    elif _seen(session, EARNED, posting):
        return False
    return _attach_to_a_slot(session, [item], str(member_id), day, due, now, settings, zone, slot_absent)


_ATTACH_ALL = prepared(text(
    "WITH slot AS (SELECT id FROM deliveries WHERE dedupe_key = :dedupe_key AND state = 'queued' FOR UPDATE), "
    "added AS (INSERT INTO digest_items (kind, item_ref, member_id, delivery_id, points, recorded_at) "
    "SELECT :kind, item.ref, :member_id, slot.id, item.points, :recorded_at FROM slot, "
    "unnest(CAST(:refs AS text[]), CAST(:points AS integer[])) AS item(ref, points) "
    "ON CONFLICT (kind, item_ref) DO NOTHING RETURNING item_ref) "
    "SELECT (SELECT count(*) FROM added) AS attached, "
    "(SELECT count(*) FROM digest_items WHERE kind = :kind AND item_ref = ANY(CAST(:refs AS text[]))) AS seen"
).bindparams(bindparam("member_id", type_=Uuid()), bindparam("recorded_at", type_=UtcDateTime())))
"""PostgreSQL: ``_ATTACH`` for several postings of one member and one time (a visit's), in one query: how many were
attached, and how many were counted before (the snapshot before the insert)."""


def visit_points_earned(session: Session, lines: list[dict[str, Any]], now: datetime, settings: Settings,
                        zone: ZoneInfo) -> None:
    """Count a visit's postings (points' ``visit_points_earned``, as ``earned_lines`` gives them: one member, one
    time, so one digest slot) into the member's daily digest, each once.

    On PostgreSQL the usual case is one query for them all (``_ATTACH_ALL``); the day's first visit queues the digest
    and adds the items with the commit. Anything else (some counted before, SQLite) goes posting by posting."""
    first = lines[0]
    member_id = first["member_id"]
    day, due = journeys.digest_slot(first["earned_at"], settings, zone)
    if session.get_bind().dialect.name == "postgresql" and len(lines) > 1:
        attached, seen = session.execute(_ATTACH_ALL, {
            "kind": EARNED, "member_id": member_id, "recorded_at": now,
            "refs": [line["posting_id"] for line in lines], "points": [line["points"] for line in lines],
            "dedupe_key": journeys.points_digest(str(member_id), day, due, zone).dedupe_key}).one()
        if attached == len(lines):
            return
        if attached == 0 and seen == 0:  # the slot has no queued digest: the day's first visit, usually
            items = [{"kind": EARNED, "item_ref": line["posting_id"], "member_id": member_id,
                      "points": line["points"], "recorded_at": now} for line in lines]
            _attach_to_a_slot(session, items, str(member_id), day, due, now, settings, zone, slot_absent=True)
            return
    for line in lines:  # rare: a posting counted before (or a twin's race), or SQLite
        points_earned(session, line, now, settings, zone)


def _attach_to_a_slot(session: Session, items: list[dict[str, Any]], member_id: str, day: date, due: datetime,
                      now: datetime, settings: Settings, zone: ZoneInfo, slot_absent: bool) -> bool:
    """Add ``items`` (none counted before) with the commit to the first digest of ``member_id`` still to be sent, from
    ``day``'s (queued now if there is none); False if none within ``MAX_DAYS_AHEAD``."""
    for _ in range(MAX_DAYS_AHEAD):
        plan = journeys.points_digest(member_id, day, due, zone)
        delivery_id = _slot(session, plan, now, slot_absent)
        if delivery_id is not None:
            for item in items:
                at_commit(session, _ADD_ITEM, {**item, "delivery_id": delivery_id})
            return True
        slot_absent = False
        day += timedelta(days=1)
        due = at_local(day, settings.digest_time, zone)
    return False


def _slot(session: Session, plan: journeys.Plan, now: datetime, absent: bool) -> uuid.UUID | None:
    """The queued summary delivery of ``plan``'s slot (queued now if there is none; ``absent``: none was there a
    moment ago, so try the insert first); None if the slot's message already went."""
    if not absent:
        found = _queued(session, plan.dedupe_key)
        if found is not None:
            return found.id if found else None
    inserted = deliveries.queue_id(session, plan, now)
    if inserted is not None:
        return inserted
    found = _queued(session, plan.dedupe_key)  # a twin queued it meanwhile
    return found.id if found else None


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
