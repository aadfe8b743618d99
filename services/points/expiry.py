"""The daily jobs' batches: expire lots past their date, warn of lots about to expire, expire coupons.

Each function makes a ``step(session, cursor) -> (next_cursor, processed)`` for ``kit.jobs.run_batches``:
one bounded batch per transaction, its effects, its events and the job's cursor committed together,
so a run interrupted anywhere continues where it stopped and never expires or warns twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, timedelta
from itertools import groupby
from typing import Any

from sqlalchemy import select, tuple_, update
from sqlalchemy.orm import Session

from services.kit.jobs import Step
from services.points import ledger
from services.points.awards import Context
from services.points.models import Coupon, PointsLot

Emit = Callable[[Session, str, dict[str, Any]], None]
"""Writes an event to the outbox in the batch's transaction."""


def _key(row: Any) -> list[Any]:
    return [row.expires_on.isoformat(), str(row.member_id), row.id]


def expire_lots_step(ctx: Context, today: date, emit: Emit, batch: int = 1000) -> Step:
    """Expire every lot whose last day is before ``today``: one posting per member and expiry date,
    a batch of lots at a time in a few set-based statements (``ledger.expire_in_bulk``)."""

    def step(session: Session, cursor: list[Any] | None) -> tuple[list[Any] | None, int]:
        query = (select(PointsLot.id, PointsLot.member_id, PointsLot.expires_on)
                 .where(PointsLot.remaining > 0, PointsLot.expires_on < today)
                 .order_by(PointsLot.expires_on, PointsLot.member_id, PointsLot.id).limit(batch))
        if cursor:
            after = (date.fromisoformat(cursor[0]), uuid.UUID(cursor[1]), cursor[2])
            query = query.where(tuple_(PointsLot.expires_on, PointsLot.member_id, PointsLot.id) > after)
        rows = session.execute(query).all()
        if not rows:
            return None, 0
        groups = [list(lots) for _key, lots in groupby(rows, key=lambda r: (r.expires_on, r.member_id))]
        if len(rows) == batch and len(groups) > 1:
            groups.pop()  # the last member may have more lots past this batch: take them all next time
        kept = [row for group in groups for row in group]
        balances = ledger.lock_balances(session, sorted({row.member_id for row in kept}, key=str))
        live = session.execute(  # re-read under the locks: a redemption may have spent some meanwhile
            select(PointsLot.id, PointsLot.member_id, PointsLot.expires_on, PointsLot.remaining)
            .where(PointsLot.id.in_([row.id for row in kept]), PointsLot.remaining > 0)
            .order_by(PointsLot.member_id, PointsLot.expires_on, PointsLot.id)).all()
        expiring = [ledger.Expiring(member_id, expires_on, [(lot.id, lot.remaining) for lot in lots])
                    for (member_id, expires_on), lots in groupby(live, key=lambda r: (r.member_id, r.expires_on))]
        for posting in ledger.expire_in_bulk(session, expiring, balances, ctx.operator, ctx.now):
            emit(session, *ledger.expired_event(posting["member_id"], posting["id"], posting["points"]))
        return (_key(kept[-1]) if len(rows) == batch else None), len(live)

    return step


def warn_step(ctx: Context, today: date, emit: Emit, batch: int = 1000) -> Step:
    """Announce each lot once, ``expiry_warning_days`` before it expires (``points_expiring``)."""
    horizon = today + timedelta(days=ctx.programme.expiry_warning_days)

    def step(session: Session, cursor: list[Any] | None) -> tuple[list[Any] | None, int]:
        query = (select(PointsLot.id, PointsLot.member_id, PointsLot.remaining, PointsLot.expires_on)
                 .where(PointsLot.remaining > 0, PointsLot.warned.is_(False), PointsLot.expires_on >= today,
                        PointsLot.expires_on <= horizon)
                 .order_by(PointsLot.expires_on, PointsLot.id).limit(batch))
        rows = session.execute(query).all()
        if not rows:
            return None, 0
        for row in rows:
            emit(session, "points_expiring", {"member_id": row.member_id, "lot_id": str(row.id),
                                              "points": int(row.remaining), "expires_on": row.expires_on})
        session.execute(update(PointsLot).where(PointsLot.id.in_([row.id for row in rows])).values(warned=True))
        # warned lots leave the query, so the cursor only records progress
        return ([rows[-1].expires_on.isoformat(), rows[-1].id] if len(rows) == batch else None), len(rows)

    return step


def expire_coupons_step(ctx: Context, today: date, batch: int = 1000) -> Step:
    """Unused coupons past their last day become expired."""

    def step(session: Session, cursor: Any) -> tuple[Any, int]:
        ids = list(session.scalars(select(Coupon.id).where(Coupon.state == "issued", Coupon.valid_until < today)
                                   .order_by(Coupon.valid_until, Coupon.id).limit(batch).with_for_update()))
        if ids:
            session.execute(update(Coupon).where(Coupon.id.in_(ids), Coupon.state == "issued")
                            .values(state="expired", updated_at=ctx.now))
        return ([str(ids[-1])] if len(ids) == batch else None), len(ids)

    return step
