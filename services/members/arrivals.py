"""A paid visit's facts as members' handlers meet them (records' ``visit_completed``, points' ``visit_points_earned``
with all the visit's earn postings, or a ``points_earned``): on PostgreSQL everything a handler decides on is read in
one round trip, and everything it writes goes with its commit — three round trips a handler with the kit's inbox
check (were 9 and 8: issue 17, members' CPU per bill).

The read (``hold_for_visit``, ``hold_for_points``) is two statements in one query, as ``kit.locks.then`` sends them:
the member's row locked (``FOR UPDATE``, only if it is not merged), then, with a snapshot taken once the lock is
granted (what the lock's previous holder committed is seen), the member's tier standing, the ``STAMP`` of the
programme in force, whether the fact was kept before and the member's 12-month sums *before* the fact. The handler
adds the fact to the sums (``Window.with_visit``, ``with_points``) instead of reading them again after writing it,
so the fact's row can go with the commit (``activity.keep_new_visit``, ``keep_new_points``). A tier change it earns
goes with the commit too (``tier_ledger._apply_to_held``: the member is never loaded), so the member stays locked for
no round trip of the change's own; when points may change the tier, the other sums are read once more under the lock
(``with_the_rest``) instead of the general path's reads (a promotion held the member for ~10 round trips, and the
visit's other handler waited on that lock holding a worker: issue 17's five minutes at 50 flows a second).

``None`` — the general path (``tier_ledger.member_for_event``, then ``activity.record_*``) — for SQLite, a member
not found or merged (events about a merged member apply to its survivor, locked with its chain in id order), and
the handler takes it too when the fact has a row already (a visit kept before, or a refund that came first) or a
reversal overtook a posting, or some of a visit's postings have rows and some not: rare, and what those cases do is
written there once. Postings kept before are simply done with.

Lock order: the member's row alone, as ``member_for_event`` locks an unmerged member. A merge that commits while
this read waits leaves the row locked but merged: the read says merged, and the general path locks the chain, as
``member_for_event`` does after a chain changed under it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, any_, bindparam, exists, func, literal_column, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from services.kit.db import PREPARED
from services.members import activity, programme_versions
from services.members.models import Member, MemberPoints, MemberTopUp, MemberVisit
from services.members.rules.tiers import Activity
from services.records.events import VISIT_KINDS


@dataclass(frozen=True)
class Window:
    """A member's sums over the 12 months judged (``tiers.window``), as the tier paths count them: net spend,
    counted visits by kind (which kinds count is the programme's), points (may be below 0: read as 0) and the
    largest top-up."""

    first: date
    last: date
    spend_minor: int = 0
    visits: tuple[tuple[str, int], ...] = ()
    points: int = 0
    top_up_minor: int = 0

    def activity(self, tier_kinds: tuple[str, ...]) -> Activity:
        return Activity(spend_minor=self.spend_minor, largest_top_up_minor=self.top_up_minor,
                        points=self.counted_points, visits=sum(n for kind, n in self.visits if kind in tier_kinds))

    @property
    def counted_points(self) -> int:
        return max(self.points, 0)

    def with_visit(self, day: date, kind: str, qualifying_minor: int) -> Window:
        """With a newly completed visit (no refund yet: its net spend is what qualifies, ``activity.net_spend``)."""
        if not self.first <= day <= self.last:
            return self
        return replace(self, spend_minor=self.spend_minor + max(qualifying_minor, 0),
                       visits=tuple((k, n + (k == kind)) for k, n in self.visits))

    def with_points(self, day: date, rule: str, points: int) -> Window:
        """With a newly kept posting (``activity.tier_points``: what it counts for tiers)."""
        if not self.first <= day <= self.last:
            return self
        return replace(self, points=self.points + activity.tier_points(rule, points))


@dataclass(frozen=True)
class Held:
    """The member an event is about, locked, as the tier rules need it: no ORM object (one is loaded only to change
    the member, ``tier_ledger.reassess``)."""

    id: uuid.UUID
    status: str
    tier: str
    tier_pending: str | None
    programme_version: int | None  # programme_versions.STAMP: None when no version is stored
    programme_stored_at: datetime | None
    known: bool  # the fact has a row already
    window: Window


def _in_window(model: Any) -> Any:
    return and_(model.member_id == bindparam("member"), model.day.between(bindparam("first"), bindparam("last")))


_STANDING = (Member.merged_into_id, Member.status, Member.tier, Member.tier_pending,
             programme_versions.STAMP[0].label("programme_version"),
             programme_versions.STAMP[1].label("programme_stored_at"))
_POINTS = (select(func.coalesce(func.sum(MemberPoints.points), 0)).where(_in_window(MemberPoints))
           .scalar_subquery().label("points"))
_TOP_UP = (select(func.coalesce(func.max(MemberTopUp.amount_minor), 0)).where(_in_window(MemberTopUp))
           .scalar_subquery().label("top_up_minor"))
_VISITS = select(
    func.coalesce(func.sum(activity.net_spend()), 0).label("spend_minor"),
    *(func.count().filter(and_(activity.counted(), MemberVisit.kind == literal_column(f"'{kind}'")))
      .label(f"visits_{kind}") for kind in VISIT_KINDS),
).where(_in_window(MemberVisit)).subquery("visits")

_READ_FOR_VISIT = select(
    *_STANDING, exists().where(MemberVisit.visit_id == bindparam("fact")).label("known"),
    _VISITS.c.spend_minor, *(_VISITS.c[f"visits_{kind}"] for kind in VISIT_KINDS), _POINTS, _TOP_UP,
).where(Member.id == bindparam("member"))
# how many of the postings were kept before, and whether a reversal of one came first (moved to the posting's day
# when it is kept); ``fact`` is the list of posting ids (an array for the driver)
_READ_FOR_POINTS = select(
    *_STANDING, select(func.count()).where(MemberPoints.posting_id == any_(bindparam("fact")))
    .scalar_subquery().label("kept"),
    exists().where(MemberPoints.reverses_posting_id == any_(bindparam("fact")),
                   MemberPoints.member_id == bindparam("member")).label("overtaken"),
    _POINTS,
).where(Member.id == bindparam("member"))

# the rest of a held member's sums, when its points may change the tier (``with_the_rest``)
_READ_THE_REST = select(_VISITS.c.spend_minor, *(_VISITS.c[f"visits_{kind}"] for kind in VISIT_KINDS), _TOP_UP)

_LOCK = "SELECT 1 FROM members WHERE id = %(member)s AND merged_into_id IS NULL FOR UPDATE"


def _prebuilt(statement: Any, after: str | None = None) -> tuple[str, dict[str, Any]]:
    """``statement`` as a query for the driver (built once: no SQLAlchemy compile or cache-key per event), sent in
    one query after ``after`` if given, with the constants the compiler made parameters of."""
    compiled = statement.compile(dialect=postgresql.psycopg2.dialect())
    query = compiled.string if after is None else f"{after}; {compiled.string}"
    return query, {name: value for name, value in compiled.params.items() if value is not None}


_VISIT_QUERY, _VISIT_CONSTANTS = _prebuilt(_READ_FOR_VISIT, after=_LOCK)
_POINTS_QUERY, _POINTS_CONSTANTS = _prebuilt(_READ_FOR_POINTS, after=_LOCK)
_REST_QUERY, _REST_CONSTANTS = _prebuilt(_READ_THE_REST)  # the member already locked
_PREPARED = {PREPARED: True}  # one of them a handler run: both statements prepared per connection (``kit.db.prepared``)


def _read(session: Session, query: str, constants: dict[str, Any], member_id: uuid.UUID, fact: str | list[str],
          first: date, last: date) -> Any:
    if session.get_bind().dialect.name != "postgresql":
        return None
    row = session.connection().exec_driver_sql(query, {**constants, "member": member_id, "fact": fact,
                                                       "first": first, "last": last}, _PREPARED).first()
    return None if row is None or row.merged_into_id is not None else row


def _visits(row: Any) -> tuple[tuple[str, int], ...]:
    return tuple((kind, int(getattr(row, f"visits_{kind}"))) for kind in VISIT_KINDS)


def _held(member_id: uuid.UUID, row: Any, known: bool, window: Window) -> Held:
    return Held(member_id, row.status, row.tier, row.tier_pending, row.programme_version, row.programme_stored_at,
                known, window)


def hold_for_visit(session: Session, member_id: uuid.UUID, visit_id: str, first: date, last: date) -> Held | None:
    """The member of a completed visit, locked, with whether the visit has a row and the window's sums before it."""
    row = _read(session, _VISIT_QUERY, _VISIT_CONSTANTS, member_id, visit_id, first, last)
    if row is None:
        return None
    window = Window(first, last, int(row.spend_minor), _visits(row), int(row.points), int(row.top_up_minor))
    return _held(member_id, row, bool(row.known), window)


def hold_for_points(session: Session, member_id: uuid.UUID, posting_ids: list[str], first: date,
                    last: date) -> Held | None:
    """The member of postings (one ``points_earned``, or the lines of a ``visit_points_earned``), locked, with
    whether they have rows, and the window's points before them (the other sums are not read: points re-judge the
    points path alone, ``tier_ledger.reassess_after_points``). None too when a reversal of one came first (the
    general path moves it to the posting's day), or when some of them have rows and some not."""
    row = _read(session, _POINTS_QUERY, _POINTS_CONSTANTS, member_id, list(posting_ids), first, last)
    known = row is not None and row.kept == len(posting_ids)
    if row is None or (not known and (row.overtaken or row.kept)):
        return None
    return _held(member_id, row, known, Window(first, last, points=int(row.points)))


def with_the_rest(session: Session, member_id: uuid.UUID, window: Window) -> Window:
    """A held member's ``window`` (``hold_for_points`` read its points only) with the other sums, read under the lock
    the member is held by: when points may change the tier, which is judged on all of them (``tier_ledger.reassess``).
    One more round trip, prepared; the general path it replaces loaded the member and read everything again."""
    row = session.connection().exec_driver_sql(_REST_QUERY, {
        **_REST_CONSTANTS, "member": member_id, "first": window.first, "last": window.last}, _PREPARED).one()
    return replace(window, spend_minor=int(row.spend_minor), top_up_minor=int(row.top_up_minor), visits=_visits(row))
