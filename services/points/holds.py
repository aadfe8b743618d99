"""Pending points: a visit's points locked for the refund window, then released by a daily job.

Where the programme says so (``Programme.pending_for``), a visit line opens no lot and posts nothing to
the points ledger: it opens a hold (``points_holds``: how many, until when) with a ``lock`` entry in the
pending ledger (``points_pending_postings``), and the account's ``pending`` grows, its ``balance`` does
not. Pending points cannot be spent, do not count as earned (no ``points_earned``, no earned total: tiers
never see them) and never expire.

- A refund inside the window cancels its share of the hold (a ``cancel`` entry): the balance is
  untouched, so no debt can arise.
- The release job (``release_step``, one of the points' daily jobs, ``kit.jobs``) turns what is left of each
  hold due into an ordinary ``earn`` posting with its lot (dedupe key ``release:<hold>``) and a ``release``
  entry, announced as ``points_earned`` that day. A refund after the release reverses that earn as usual.

Both ledgers stay append-only; ``balance`` = sum of postings = open lots and ``pending`` = sum of pending
entries = what the holds still lock (``reconciliation.py``). Everything about one visit runs under
``awards.hold_visit`` (the ``points.visit`` lock): the earn that locks, a refund that cancels and the
release see each other's commits, never half of them (docs/concurrency.md).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from services.kit.jobs import Step
from services.kit.locks import serialise
from services.kit.telemetry import counter
from services.points import ledger, roster
from services.points.ledger import Entry
from services.points.models import PendingPosting, PointsAccount, PointsHold, PointsPosting

VISIT_LOCK = "points.visit"  # the lock of awards.hold_visit (awards imports this module)

PENDING = counter("careloop_points_pending_total", "Points locked in the refund window, by what became of them",
                  ("outcome",))


def _pend(session: Session, hold: PointsHold, member_id: uuid.UUID, kind: str, points: int, operator: str,
          reason: str | None, now: datetime, dedupe_key: str | None = None) -> PendingPosting:
    """An entry of the pending ledger and the account's pending moved by it (the account locked first)."""
    ledger.lock_account(session, member_id, now)
    pending = session.execute(update(PointsAccount).where(PointsAccount.member_id == member_id)
                              .values(pending=PointsAccount.pending + points).returning(PointsAccount.pending)
                              .execution_options(synchronize_session=False)).scalar_one()
    entry = PendingPosting(member_id=member_id, hold_id=hold.id, kind=kind, points=points, pending_after=pending,
                           dedupe_key=dedupe_key, operator=operator[:160], reason=reason, created_at=now)
    session.add(entry)
    session.flush()
    return entry


def locked(session: Session, dedupe_key: str) -> bool:
    """Whether a visit line was locked under ``dedupe_key`` (the key its earn would have had)."""
    return session.scalar(select(PointsHold.id).where(PointsHold.dedupe_key == dedupe_key)) is not None


def lock(session: Session, member_id: uuid.UUID, visit_id: str, points: int, rule: str, entry: Entry,
         expires_on: date, release_on: date, basis_minor: int | None, now: datetime) -> PointsHold:
    """Lock ``points`` of a visit line until ``release_on``: a hold and its ``lock`` entry."""
    hold = PointsHold(member_id=member_id, dedupe_key=entry.dedupe_key, visit_id=visit_id, rule=rule, points=points,
                      remaining=points, basis_minor=basis_minor, branch=entry.branch, reason=entry.reason,
                      expires_on=expires_on, release_on=release_on, created_at=now, updated_at=now)
    ledger.lock_account(session, member_id, now)
    session.add(hold)
    session.flush()
    _pend(session, hold, member_id, "lock", points, entry.operator, entry.reason, now)
    PENDING.labels("locked").inc(points)
    return hold


def of_visit(session: Session, visit_id: str) -> list[PointsHold]:
    """The holds of a visit (read under ``hold_visit``)."""
    return list(session.scalars(select(PointsHold).where(PointsHold.visit_id == visit_id).order_by(PointsHold.id)
                                .execution_options(populate_existing=True)))


def cancel(session: Session, hold: PointsHold, points: int, entry: Entry, now: datetime) -> PendingPosting:
    """A refund inside the window: ``points`` of the hold are never credited (no debt can follow)."""
    cancelled = _pend(session, hold, hold.member_id, "cancel", -points, entry.operator, entry.reason, now,
                      entry.dedupe_key)
    hold.remaining -= points
    hold.updated_at = now
    PENDING.labels("cancelled").inc(points)
    return cancelled


def already_taken(session: Session, hold: PointsHold) -> tuple[int, PointsPosting | None]:
    """What refunds took of the hold so far (cancelled before its release, reversed after it), and the
    release's earn (None while locked)."""
    if hold.released_posting_id is None:
        return hold.points - hold.remaining, None
    earned = session.get(PointsPosting, hold.released_posting_id)
    return hold.points - earned.points + ledger.reversed_so_far(session, earned), earned


def release(session: Session, hold: PointsHold, to_member: uuid.UUID, operator: str, now: datetime) -> PointsPosting:
    """Make what is left of the hold spendable: an ``earn`` with its lot, and the ``release`` entry. A member
    merged away since: its pending goes down and the member it was merged into earns."""
    points = hold.remaining
    entry = Entry("visit", hold.visit_id, operator, hold.branch, hold.reason or "points released",
                  dedupe_key=f"release:{hold.id}")
    earned = ledger.earn(session, to_member, points, hold.rule, entry, hold.expires_on, now,
                         basis_minor=hold.basis_minor)
    _pend(session, hold, hold.member_id, "release", -points, operator, "released after the refund window", now)
    hold.remaining = 0
    hold.released_posting_id = earned.id
    hold.updated_at = now
    PENDING.labels("released").inc(points)
    return earned


def release_step(operator: str, now: datetime, today: date, emit: Any, batch: int = 200) -> Step:
    """Release every hold whose day has come, a batch at a time (``kit.jobs``). Lock order (``kit.locks``):
    the visits first, in visit-id order (no other transaction holds two), then the members' aliases, then
    the accounts in member-id order. Released holds leave the query, so the cursor only records progress: a
    run stopped anywhere continues where it was and never releases twice."""

    def step(session: Session, cursor: Any) -> tuple[Any, int]:
        due = session.execute(select(PointsHold.id, PointsHold.visit_id)
                              .where(PointsHold.remaining > 0, PointsHold.release_on <= today)
                              .order_by(PointsHold.release_on, PointsHold.id).limit(batch)).all()
        if not due:
            return None, 0
        for visit_id in sorted({row.visit_id for row in due}):
            serialise(session, VISIT_LOCK, visit_id)
        holds = list(session.scalars(  # read again under the locks: a refund may have cancelled some meanwhile
            select(PointsHold).where(PointsHold.id.in_([row.id for row in due]), PointsHold.remaining > 0)
            .order_by(PointsHold.id).execution_options(populate_existing=True)))
        owners = sorted({hold.member_id for hold in holds}, key=str)
        targets = {owner: roster.survivor_of(session, owner, held=True) for owner in owners}
        ledger.lock_accounts(session, set(owners) | set(targets.values()), now)
        for hold in holds:
            earned = release(session, hold, targets[hold.member_id], operator, now)
            emit(session, *ledger.event_of(earned))
            ledger.count(earned)
        return ([due[-1].id] if len(due) == batch else None), len(holds)

    return step


def schedule(session: Session, member_id: uuid.UUID) -> list[dict[str, Any]]:
    """What a member has locked, by release day (the balance answer's ``pending_schedule``)."""
    rows = session.execute(select(PointsHold.release_on, func.sum(PointsHold.remaining))
                           .where(PointsHold.member_id == member_id, PointsHold.remaining > 0)
                           .group_by(PointsHold.release_on).order_by(PointsHold.release_on))
    return [{"release_on": day, "points": int(points)} for day, points in rows]


def of_visits(session: Session, visit_ids: list[str]) -> tuple[dict[str, list[tuple[int, int | None]]],
                                                                dict[str, int], set[int]]:
    """For the visit audit: each visit's locked lines (points, basis), what refunds cancelled of them inside
    the window, and the ids of the earns that released holds (the line is the hold, not that earn)."""
    lines: dict[str, list[tuple[int, int | None]]] = defaultdict(list)
    cancelled: dict[str, int] = defaultdict(int)
    released: set[int] = set()
    for hold in session.scalars(select(PointsHold).where(PointsHold.visit_id.in_(visit_ids))):
        lines[hold.visit_id].append((hold.points, hold.basis_minor))
        if hold.released_posting_id is not None:
            released.add(hold.released_posting_id)
    for visit_id, points in session.execute(
            select(PointsHold.visit_id, func.sum(PendingPosting.points)).join(PendingPosting,
                                                                               PendingPosting.hold_id == PointsHold.id)
            .where(PointsHold.visit_id.in_(visit_ids), PendingPosting.kind == "cancel").group_by(PointsHold.visit_id)):
        cancelled[visit_id] = -int(points)
    return lines, cancelled, released
