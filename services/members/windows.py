"""Each member's last 12 months, kept summed (``member_windows``): what the programme preview reads instead of
summing every member's activity rows at once (``standings.py``).

A row holds one member's sums over the local days ``tiers.window(computed_for)`` as the tier rules count them
(net spend, points earned, the largest top-up, the visits that count by kind), and two days that say how long
they stay true without being recomputed: ``earliest_day``, the first day with activity inside the window (when it
leaves the window the sums change), and ``next_day``, the first day with activity after ``computed_for`` (a fact
dated ahead, when it enters). For a day ``as_of`` the row is *fresh* when ``computed_for <= as_of``, its
``earliest_day`` is not before the first day of ``as_of``'s window and its ``next_day`` is after ``as_of``
(``fresh``); a member without a row has no activity from the window's first day on (zero everywhere).

Kept by:
- the event handlers, after each fact they keep (a visit, a refund, points earned or reversed, a top-up):
  ``mark_stale``, under the member's lock (``tier_ledger.member_for_event``, or ``arrivals``), a statement sent with
  the commit that makes the row not fresh from the fact's day (the preview then sums that member live; recomputing
  the sums in every handler more than doubled members' CPU per paid visit); both members of a merge or its reversal:
  ``refresh`` (``lifecycle.lock_pair``);
- the nightly job (``refresh_stale``), for the window's rolling edge: the rows no longer fresh for the night's
  day, in member id order, locked (``FOR UPDATE``) while they are recomputed, so a handler's refresh of the
  same member waits and writes last, with every fact;
- ``rebuild_batch``, every member once, the first night after the release that made the table on a database
  with activity (``REBUILD``: what the previous version handled during the rollout is in it too), members
  locked as handlers lock them.
Whatever the nightly job has not reached yet is still exact: the preview sums the activity rows of the rows
that are not fresh (``as_of``), the few the night has not refreshed.
"""

from __future__ import annotations

import functools
import operator
import uuid
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    and_,
    case,
    cast,
    func,
    literal_column,
    not_,
    null,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.types import Date, Uuid

from services.kit.commit import AtCommit, at_commit
from services.kit.models import JobRun, UtcDateTime
from services.members import activity
from services.members.models import Member, MemberPoints, MemberTopUp, MemberVisit, MemberWindow
from services.members.rules import tiers
from services.records.events import VISIT_KINDS

VISITS = {kind: getattr(MemberWindow, f"visits_{kind}").key for kind in VISIT_KINDS}
"""A column of visits per visit kind (a kind records adds without its column fails here, at import)."""
SUMS = ("spend_minor", "points", "top_up_minor", *VISITS.values())

Members = Callable[[Any], Any]
"""Which members, as a condition on a ``member_id`` column."""


def _facts(members: Members, first: date, last: date) -> Any:
    """Every activity row of ``members`` dated ``first`` or later, one row per fact with its part of each sum."""
    zero, nothing = literal_column("0"), cast(null(), BigInteger)  # typed: PostgreSQL's UNION makes NULLs text

    def days(model: Any) -> tuple[Any, Any]:
        return (case((model.day <= last, model.day)).label("earliest_day"),
                case((model.day > last, model.day)).label("next_day"))

    def counted(kind: str) -> Any:
        return case((and_(MemberVisit.day <= last, activity.counted(), MemberVisit.kind == kind), 1), else_=0)

    visits = select(MemberVisit.member_id.label("member_id"),
                    case((MemberVisit.day <= last, activity.net_spend()), else_=0).label("spend_minor"),
                    zero.label("points"), nothing.label("top_up_minor"),
                    *(counted(kind).label(column) for kind, column in VISITS.items()), *days(MemberVisit)
                    ).where(members(MemberVisit.member_id), MemberVisit.day >= first)
    points = select(MemberPoints.member_id, zero, case((MemberPoints.day <= last, MemberPoints.points), else_=0),
                    nothing, *(zero for _ in VISITS), *days(MemberPoints)
                    ).where(members(MemberPoints.member_id), MemberPoints.day >= first)
    top_ups = select(MemberTopUp.member_id, zero, zero, case((MemberTopUp.day <= last, MemberTopUp.amount_minor)),
                     *(zero for _ in VISITS), *days(MemberTopUp)
                     ).where(members(MemberTopUp.member_id), MemberTopUp.day >= first)
    return union_all(visits, points, top_ups).subquery("facts")


def summed(members: Members, first: date, last: date, bounds: bool = True) -> Any:
    """Per member of ``members`` with activity from ``first`` on: the sums over ``first``..``last`` (named as
    ``member_windows``' columns) and, with ``bounds``, the first day inside and the first day after."""
    facts = _facts(members, first, last)
    sums = (cast(func.coalesce((func.max if column == "top_up_minor" else func.sum)(facts.c[column]), 0), BigInteger)
            .label(column) for column in SUMS)  # whole numbers (a sum is numeric in PostgreSQL, slower to compare)
    extra = (func.min(facts.c.earliest_day).label("earliest_day"),
             func.min(facts.c.next_day).label("next_day")) if bounds else ()
    return select(facts.c.member_id, *sums, *extra).group_by(facts.c.member_id)


def fresh(first: date, as_of: date) -> Any:
    """The rows whose sums are those of the window ``first``..``as_of`` (see the module)."""
    return and_(MemberWindow.computed_for <= as_of,
                or_(MemberWindow.earliest_day.is_(None), MemberWindow.earliest_day >= first),
                or_(MemberWindow.next_day.is_(None), MemberWindow.next_day > as_of))


STALE_LISTED = 10_000
"""Up to this many rows that are not fresh are named in the preview's statement (the database then reads their
activity by index); more (a night missed) are found by a subquery, as the statement can."""


def as_of(session: Session, first: date, last: date, kept: bool = True) -> Any:
    """Every member's sums over ``first``..``last`` with activity in it: the fresh rows as kept, the others summed
    from their activity rows (all of them without ``kept``). Columns: ``member_id`` and ``SUMS``.

    The rows that are not fresh are listed first (one scan of the narrow table): usually none or a night's few,
    and the statement is then the kept rows alone, or with those members' activity read by index. A row rewritten
    for a later day between the two (a handler just after midnight) counts as nothing in that one answer."""
    if not kept:
        return summed(lambda column: true(), first, last, bounds=False).subquery("windows")
    kept_rows = select(MemberWindow.member_id, *(getattr(MemberWindow, column) for column in SUMS))
    stale_rows = select(MemberWindow.member_id).where(not_(fresh(first, last)))
    stale = list(session.scalars(stale_rows.limit(STALE_LISTED + 1)))
    if not stale:
        return kept_rows.where(fresh(first, last)).subquery("windows")
    listed = len(stale) <= STALE_LISTED
    live = summed(lambda column: column.in_(stale if listed else stale_rows), first, last, bounds=False)
    return union_all(kept_rows.where(fresh(first, last)), live).subquery("windows")


def visits_of(window: Any, kinds: Sequence[str]) -> Any:
    """The visits of ``kinds`` in a subquery with ``SUMS`` columns."""
    return functools.reduce(operator.add, (window.c[VISITS[kind]] for kind in kinds))


def _rows(member_ids: Sequence[uuid.UUID], day: date, found: dict[uuid.UUID, Any], now: datetime) -> list[dict]:
    empty = dict.fromkeys(SUMS, 0) | {"earliest_day": None, "next_day": None}
    return [{"member_id": member_id, "computed_for": day, "updated_at": now,
             **(empty if member_id not in found else {name: found[member_id][name] for name in empty})}
            for member_id in member_ids]


def _upsert(session: Session, rows: list[dict]) -> None:
    """Write ``rows``, over any row computed for the same day or before (never over a later day's)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(MemberWindow)
    statement = statement.on_conflict_do_update(
        index_elements=[MemberWindow.member_id],
        set_={name: statement.excluded[name] for name in rows[0] if name != "member_id"},
        where=MemberWindow.computed_for <= statement.excluded.computed_for)
    session.execute(statement, rows)


def _sums_of(session: Session, members: Members, day: date) -> dict[uuid.UUID, Any]:
    first, last = tiers.window(day)
    return {row.member_id: row._mapping for row in session.execute(summed(members, first, last))}


def refresh(session: Session, member_ids: Sequence[uuid.UUID], day: date, now: datetime) -> None:
    """Recompute the rows of ``member_ids`` (locked by the caller, in id order) for the window ending ``day``."""
    ids = sorted(member_ids)
    found = _sums_of(session, (lambda column: column == ids[0]) if len(ids) == 1 else
                     (lambda column: column.in_(ids)), day)
    _upsert(session, _rows(ids, day, found, now))


_STALE = AtCommit(
    f"INSERT INTO member_windows (member_id, computed_for, {', '.join(SUMS)}, earliest_day, next_day, updated_at) "
    f"VALUES (:member_id, :day, {', '.join('0' for _ in SUMS)}, NULL, :day, :now) "
    "ON CONFLICT (member_id) DO UPDATE SET next_day = :day, updated_at = :now",
    prepare=True, member_id=Uuid(), day=Date(), now=UtcDateTime())  # every visit's handlers: prepared


def mark_stale(session: Session, member_id: uuid.UUID, day: date, now: datetime) -> None:
    """After a fact of ``member_id`` (locked by the caller) dated ``day``: its row says its sums are no longer
    true from ``day`` on (``next_day``; a new row holds zeros), so ``fresh`` fails, the preview sums this member
    live and the night recomputes the row. A statement sent with the handler's commit (``kit.commit.at_commit``:
    no round trip of its own) instead of the member's activity read and summed in every handler."""
    at_commit(session, _STALE, {"member_id": member_id, "day": day, "now": now})


def refresh_stale(session: Session, day: date, after: uuid.UUID | None, size: int,
                  now: datetime) -> tuple[uuid.UUID | None, int]:
    """The nightly step: the next ``size`` rows after ``after`` that are not fresh for ``day``, locked and
    recomputed; (the last id, how many), or (None, 0) when none is left."""
    first, _last = tiers.window(day)
    query = (select(MemberWindow.member_id)
             .where(MemberWindow.computed_for < day, not_(fresh(first, day)))
             .order_by(MemberWindow.member_id).limit(size).with_for_update())
    if after is not None:
        query = query.where(MemberWindow.member_id > after)
    ids = list(session.scalars(query))
    if not ids:
        return None, 0
    refresh(session, ids, day, now)
    return ids[-1], len(ids)


REBUILD = ("windows_rebuild", "mem0008")
"""The one-off job (name, run key) that writes every member's row: recorded as to do by the migration that made
the table when the database already had activity, run the first night after that release. Until it finishes the
preview sums every member's activity rows, as it did before the table (``built``)."""


def built(session: Session) -> bool:
    """Whether every member's row is written (no ``REBUILD`` waiting to finish)."""
    job, key = REBUILD
    return session.scalar(select(JobRun.id).where(JobRun.job == job, JobRun.run_key == key,
                                                  JobRun.finished_at.is_(None))) is None


def rebuild_batch(session: Session, day: date, after: uuid.UUID | None, size: int,
                  now: datetime) -> tuple[uuid.UUID | None, int]:
    """A step of ``REBUILD``: the next ``size`` members after ``after`` locked in id order (as event handlers lock
    them), their rows written again for the window ending ``day`` (those with activity from its first day on, or
    a row already); (the last id, how many members), or (None, 0) past the last member."""
    query = select(Member.id).order_by(Member.id).limit(size).with_for_update()
    ids = list(session.scalars(query.where(Member.id > after) if after is not None else query))
    if not ids:
        return None, 0
    span = (after, ids[-1])
    found = _sums_of(session, lambda column: activity.members_where(column, id_range=span), day)
    kept = session.scalars(select(MemberWindow.member_id)
                           .where(activity.members_where(MemberWindow.member_id, id_range=span)))
    targets = sorted(set(found) | set(kept))
    if targets:
        _upsert(session, _rows(targets, day, found, now))
    return ids[-1], len(ids)
