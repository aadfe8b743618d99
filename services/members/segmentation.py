"""Segmentation at night and segment lists by day. Rules come from ``segments``; this module reads and writes.

The nightly run measures the membership once (``measure``: one aggregate per measure, computed by the
database, never loaded into Python), keeps the result in the job's cursor (so that a resumed run grades
against the same bounds) and then grades active members in id order, batch by batch. Only rows that
change are written; ``segment_changed`` goes out when a member's segment or churn risk changes (and on
a first grading that is not plain C: a member never announced is C). Lists are one index range scan on
``(segment, home_branch, member_id)``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Select, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from services.kit.paging import keyset_page
from services.kit.telemetry import counter
from services.members import activity
from services.members.models import Member, MemberActivity, MemberSegment, MemberVisit
from services.members.rules import tiers
from services.members.rules.programme import MAX_BP, Programme
from services.members.rules.segments import QUINTILES_BP, Bounds, Facts, Grade, grade, quintile_ranks, rank_for_share

Emit = Callable[[str, dict[str, Any]], Any]

SEGMENT_CHANGES = counter("careloop_members_segment_changes_total", "Members whose segment changed", ("segment",))


def _values_at_ranks(session: Session, source: Select, column: str, ranks_bp: tuple[int, ...],
                     positive: bool = True) -> tuple[int, dict[int, Any]]:
    """Among the ``n`` values of ``source.column`` (positive ones, or all but nulls) in ascending order, those
    at the ranks ``ceil(n x bp / 10000)`` (``percentile_disc``'s rule, in integers). One statement."""
    sub = source.subquery()
    value = sub.c[column]
    ranked = (select(value.label("v"), func.row_number().over(order_by=value).label("rn"),
                     func.count().over().label("n"))
              .where(value > 0 if positive else value.is_not(None))).subquery()
    wanted = [ranked.c.rn == (ranked.c.n * bp + MAX_BP - 1) // MAX_BP for bp in ranks_bp]
    rows = session.execute(select(ranked.c.n, ranked.c.rn, ranked.c.v).where(or_(*wanted))).all()
    if not rows:
        return 0, {}
    return int(rows[0].n), {int(row.rn): row.v for row in rows}


def measure(session: Session, programme: Programme, as_of: date) -> Bounds:
    """Revenue cuts and RFM quintile cut points of the members with 12 months ending on ``as_of``."""
    first, last = tiers.window(as_of)
    rules = programme.segments
    share_bp = (MAX_BP - rules.a_top_share_bp, MAX_BP - rules.a_top_share_bp - rules.b_next_share_bp)
    per_member = (select(MemberVisit.member_id, func.sum(activity.net_spend()).label("spend"),
                         func.sum(activity.counted_visit()).label("visits"))
                  .where(MemberVisit.day.between(first, last)).group_by(MemberVisit.member_id))
    spenders, spend_at = _values_at_ranks(session, per_member, "spend", (*QUINTILES_BP, *share_bp))
    visitors, visits_at = _values_at_ranks(session, per_member, "visits", QUINTILES_BP)
    last_visits = select(MemberActivity.last_visit_on.label("day"))
    recent, day_at = _values_at_ranks(session, last_visits, "day", QUINTILES_BP, positive=False)

    def revenue_cut(share: int) -> int | None:
        if not spenders:
            return None
        rank = rank_for_share(spenders, share)
        return int(spend_at[rank]) if rank >= 1 else 0

    return Bounds(
        revenue_a=revenue_cut(rules.a_top_share_bp),
        revenue_b=revenue_cut(rules.a_top_share_bp + rules.b_next_share_bp),
        recency=tuple(_as_date(day_at[rank]) for rank in quintile_ranks(recent)),
        frequency=tuple(int(visits_at[rank]) for rank in quintile_ranks(visitors)),
        monetary=tuple(int(spend_at[rank]) for rank in quintile_ranks(spenders)),
    )


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _changed(row: Any, branch: str, result: Grade, last_visit_on: date | None) -> bool:
    return (row.segment, row.rfm_r, row.rfm_f, row.rfm_m, row.churn_risk, row.usual_interval_days,
            row.last_visit_on, row.home_branch) != (result.segment, result.r, result.f, result.m, result.churn_risk,
                                                    result.usual_interval_days, last_visit_on, branch)


def grade_batch(session: Session, programme: Programme, bounds: Bounds, today: date, after: str | None,
                size: int, emit: Emit) -> tuple[str | None, int]:
    """Grade the next ``size`` active members after id ``after``; returns the last id (None at the end).

    The members are read ``FOR SHARE`` (in id order, as every lock of members is taken): a freeze, closure or
    merge committing meanwhile would otherwise find no grading to remove (``forget``) and the batch would
    then write one for a member no longer active, left in the lists for good. Now it waits for the batch,
    or the batch sees it (and skips the member)."""
    query = select(Member.id, Member.home_branch).where(Member.status == "active")
    if after:
        query = query.where(Member.id > uuid.UUID(after))
    members = session.execute(query.order_by(Member.id).limit(size).with_for_update(read=True, of=Member)).all()
    if not members:
        return None, 0
    # the batch is a contiguous range of ids: read its activity and gradings as index ranges
    id_range = (uuid.UUID(after) if after else None, members[-1].id)
    first, last = tiers.window(today - timedelta(days=1))
    sums = activity.visit_sums(session, None, first, last, programme.tier_visit_kinds, id_range)
    summary = activity.summaries(session, None, id_range)
    table = MemberSegment.__table__
    existing = {row.member_id: row for row in session.execute(
        select(table).where(activity.members_where(table.c.member_id, None, id_range)))}
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for member_id, branch in members:
        spend, _tier_visits, visits = sums.get(member_id, (0, 0, 0))
        known = summary.get(member_id)
        facts = Facts(spend_12m_minor=spend, visits_12m=visits, visits_total=known.visits_total if known else 0,
                      first_visit_on=known.first_visit_on if known else None,
                      last_visit_on=known.last_visit_on if known else None)
        result = grade(programme.segments, bounds, facts, today)
        values = {"member_id": member_id, "home_branch": branch, "segment": result.segment, "rfm_r": result.r,
                  "rfm_f": result.f, "rfm_m": result.m, "churn_risk": result.churn_risk,
                  "usual_interval_days": result.usual_interval_days, "last_visit_on": facts.last_visit_on,
                  "changed_on": today}
        before = existing.get(member_id)
        if before is None:
            inserts.append(values)
            announce = result.segment != "C" or result.churn_risk
            previous = None
        elif _changed(before, branch, result, facts.last_visit_on):
            updates.append(values)
            announce = (before.segment, before.churn_risk) != (result.segment, result.churn_risk)
            previous = before.segment
        else:
            continue
        if announce:
            emit("segment_changed", {"member_id": member_id, "from_segment": previous,
                                     "to_segment": result.segment, "rfm": result.rfm, "churn_risk": result.churn_risk})
            SEGMENT_CHANGES.labels(result.segment).inc()
    if inserts:  # Core executemany: multi-row VALUES, no ORM bookkeeping for a thousand rows
        session.execute(insert(MemberSegment.__table__), inserts)
    if updates:
        session.execute(update(MemberSegment), updates)
    return (str(members[-1].id) if len(members) == size else None), len(members)


def forget(session: Session, member_id: uuid.UUID) -> None:
    """A member no longer active leaves the lists (graded again by the first night after reactivation)."""
    session.execute(delete(MemberSegment).where(MemberSegment.member_id == member_id))


def follow_branch(session: Session, member_id: uuid.UUID, branch: str) -> None:
    session.execute(update(MemberSegment).where(MemberSegment.member_id == member_id).values(home_branch=branch))


def members_in(session: Session, segment: str, branch: str | None, churn: bool | None, limit: int,
               cursor: str | None) -> tuple[list[MemberSegment], str | None]:
    query = select(MemberSegment).where(MemberSegment.segment == segment)
    if branch:
        query = query.where(MemberSegment.home_branch == branch)
    if churn is not None:
        query = query.where(MemberSegment.churn_risk.is_(churn))
    return keyset_page(session, query, MemberSegment.member_id, MemberSegment.member_id, limit, cursor)


def of_member(session: Session, member_id: uuid.UUID) -> MemberSegment | None:
    return session.get(MemberSegment, member_id)
