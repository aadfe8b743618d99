"""The programme preview's statement before the kept 12-month sums (issue 21), kept as it was: the oracle the
kept sums are checked against (``test_member_windows.py``) and the "before" of the benchmark
(``tests/perf/test_programme_preview_perf.py``). It sums every active member's activity rows at once."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from services.members import activity
from services.members.models import Member, MemberPoints, MemberTopUp, MemberVisit
from services.members.rules import tiers
from services.members.rules.programme import Programme
from services.members.standings import Preview, _earned_rank, _held_rank, summarise


def preview(session: Session, current: Programme, proposed: Programme, as_of: date) -> Preview:
    first, last = tiers.window(as_of)
    in_window = MemberVisit.day.between(first, last)

    def tier_visits(kinds: tuple[str, ...]) -> Any:
        return func.sum(case((and_(activity.counted(), MemberVisit.kind.in_(kinds)), 1), else_=0))

    visits = (select(MemberVisit.member_id, func.sum(activity.net_spend()).label("spend"),
                     tier_visits(current.tier_visit_kinds).label("visits_now"),
                     tier_visits(proposed.tier_visit_kinds).label("visits_new"))
              .where(in_window).group_by(MemberVisit.member_id).subquery())
    points = (select(MemberPoints.member_id, func.sum(MemberPoints.points).label("points"))
              .where(MemberPoints.day.between(first, last)).group_by(MemberPoints.member_id).subquery())
    top_ups = (select(MemberTopUp.member_id, func.max(MemberTopUp.amount_minor).label("top_up"))
               .where(MemberTopUp.day.between(first, last)).group_by(MemberTopUp.member_id).subquery())
    spend = func.coalesce(visits.c.spend, 0)
    top_up = func.coalesce(top_ups.c.top_up, 0)
    earned = case((points.c.points > 0, points.c.points), else_=0)
    ranked = (select(Member.tier.label("tier"), _held_rank(current).label("held_now"),
                     _held_rank(proposed).label("held_new"),
                     _earned_rank(current, spend, top_up, earned, func.coalesce(visits.c.visits_now, 0))
                     .label("earned_now"),
                     _earned_rank(proposed, spend, top_up, earned, func.coalesce(visits.c.visits_new, 0))
                     .label("earned_new"))
              .select_from(Member)
              .outerjoin(visits, visits.c.member_id == Member.id)
              .outerjoin(points, points.c.member_id == Member.id)
              .outerjoin(top_ups, top_ups.c.member_id == Member.id)
              .where(Member.status == "active").subquery())
    columns = (ranked.c.tier, ranked.c.held_now, ranked.c.held_new, ranked.c.earned_now, ranked.c.earned_new)
    rows = session.execute(select(*columns, func.count()).group_by(*columns)).all()
    return summarise(proposed, as_of, [(row[0], *(int(value) for value in row[1:])) for row in rows])
