"""What members keeps of other services' events: visits and refunds (records), points earned and reversed,
top-ups (points). Tier and segment rules read it back as sums over a window of local days.

Each fact is kept once under its own id (visit, refund, posting, top-up): a fact announced again under a
new event id changes nothing (the kit's inbox already drops a redelivered event). Facts may arrive out
of order: a refund before its visit's completion waits on a visit row not yet completed; a points
reversal before the posting it reverses is dated on the posting's day when that arrives.

Reading a window is one index range scan on ``(member_id, day)`` per table, for one member (the upgrade
check after an event) or a batch of members (the nightly review and segmentation): never a full load.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Date, Uuid, and_, bindparam, case, func, select, text, update
from sqlalchemy.orm import Session

from services.kit.clock import local_date
from services.kit.commit import AtCommit, at_commit
from services.kit.errors import Invalid
from services.kit.models import UtcDateTime
from services.members.models import MemberActivity, MemberPoints, MemberTopUp, MemberVisit, MemberVisitRefund
from services.members.rules.tiers import Activity


@dataclass(frozen=True)
class WindowSums:
    """One member's window: what tiers need (``activity``) and what segments need besides."""

    activity: Activity
    spend_minor: int = 0
    visits: int = 0  # all completed visits, whatever the kind


def _visit(session: Session, visit_id: str, member_id: uuid.UUID) -> MemberVisit | None:
    visit = session.get(MemberVisit, visit_id)
    if visit is not None and visit.member_id != member_id:
        raise Invalid(f"Visit {visit_id} belongs to another member.", {"visit_id": ["Belongs to another member."]})
    return visit


def keep_visit(session: Session, member_id: uuid.UUID, data: dict[str, Any], zone: ZoneInfo) -> bool:
    """Keep a completed visit (``visit_id``, ``completed_at``, ``branch``, ``kind``, ``qualifying_minor``), the
    summary not refreshed; False if it was already known."""
    visit_id = str(data["visit_id"])
    visit = _visit(session, visit_id, member_id)
    if visit is not None and visit.completed:
        return False
    if visit is None:
        visit = MemberVisit(visit_id=visit_id, member_id=member_id, refunded_minor=0, fully_refunded=False)
        session.add(visit)
    visit.completed = True
    visit.completed_at = data["completed_at"]
    visit.day = local_date(data["completed_at"], zone)
    visit.branch, visit.kind = data["branch"], data["kind"]
    visit.qualifying_minor = data["qualifying_minor"]
    return True


def record_visit(session: Session, member_id: uuid.UUID, data: dict[str, Any], zone: ZoneInfo,
                 now: datetime) -> bool:
    """Keep a completed visit; False if it was already known."""
    if not keep_visit(session, member_id, data, zone):
        return False
    session.flush()
    refresh_summary(session, member_id, now)
    return True


def record_imported_visits(session: Session, member_id: uuid.UUID, visits: list[dict[str, Any]], zone: ZoneInfo,
                           now: datetime) -> int:
    """Keep the historical visits an import brought over (records' ``visits_imported``) as completed visits
    are kept, the summary refreshed once; how many were new."""
    kept = sum(keep_visit(session, member_id, visit, zone) for visit in visits)
    if kept:
        session.flush()
        refresh_summary(session, member_id, now)
    return kept


def record_refund(session: Session, member_id: uuid.UUID, data: dict[str, Any], today: date, now: datetime) -> bool:
    """Take a refund's qualifying part back out of its visit; False if this refund was already kept."""
    refund_id, visit_id = str(data["refund_id"]), str(data["visit_id"])
    if session.get(MemberVisitRefund, refund_id) is not None:
        return False
    session.add(MemberVisitRefund(refund_id=refund_id, visit_id=visit_id, member_id=member_id,
                                  refunded_minor=data["refunded_minor"], full=data["full"], recorded_at=now))
    visit = _visit(session, visit_id, member_id)
    if visit is None:  # the refund overtook the completion: keep it on a visit still to come
        visit = MemberVisit(visit_id=visit_id, member_id=member_id, day=today, completed=False,
                            qualifying_minor=0, refunded_minor=0, fully_refunded=False)
        session.add(visit)
    visit.refunded_minor = (visit.refunded_minor or 0) + data["refunded_minor"]
    visit.fully_refunded = bool(visit.fully_refunded or data["full"])
    session.flush()
    refresh_summary(session, member_id, now)
    return True


NOT_EARNED_RULES = frozenset({"adjust"})
"""Postings that are not points *earned*: a manager's adjustment (an opening balance brought over, a
correction) moves the balance but qualifies nobody for a tier. Kept, at zero, so that their reversals
also count for nothing."""


def tier_points(rule: str | None, points: int) -> int:
    return 0 if rule in NOT_EARNED_RULES else points


# one statement keeps the posting unless kept before (SQLite >= 3.35 and PostgreSQL; text: an ON CONFLICT insert
# of SQLAlchemy's dialects has no cache key and would be compiled again on every call)
_KEEP_POINTS_SQL = ("INSERT INTO member_points (posting_id, member_id, day, points, rule) "
                    "VALUES (:posting_id, :member_id, :day, :points, :rule) ON CONFLICT (posting_id) DO NOTHING")
_KEEP_POINTS = (text(f"{_KEEP_POINTS_SQL} RETURNING posting_id")
                .bindparams(bindparam("member_id", type_=Uuid()), bindparam("day", type_=Date())))
# reversals that overtook a posting belong to its day, so that they leave the window with it
_OVERTAKEN_SQL = "UPDATE member_points SET day = :reversal_day{points} WHERE reverses_posting_id = :reversed"
_OVERTAKEN = AtCommit(_OVERTAKEN_SQL.format(points=""), prepare=True, reversal_day=Date())
_OVERTAKEN_NOT_EARNED = AtCommit(_OVERTAKEN_SQL.format(points=", points = 0"), prepare=True, reversal_day=Date())


def _points_row(member_id: uuid.UUID, data: dict[str, Any], day: date) -> dict[str, Any]:
    return {"posting_id": data["posting_id"], "member_id": member_id, "day": day,
            "points": tier_points(data["rule"], data["points"]), "rule": data["rule"]}


def _overtaken(data: dict[str, Any], day: date) -> tuple[AtCommit, dict[str, Any]]:
    return (_OVERTAKEN_NOT_EARNED if data["rule"] in NOT_EARNED_RULES else _OVERTAKEN,
            {"reversed": data["posting_id"], "reversal_day": day})


def record_points(session: Session, member_id: uuid.UUID, data: dict[str, Any], day: date) -> bool:
    """Keep points earned (on ``day``, local); False if the posting was already kept."""
    kept = session.execute(_KEEP_POINTS, _points_row(member_id, data, day)).first()
    if kept is None:
        return False
    overtaken, params = _overtaken(data, day)
    session.execute(overtaken.statement, params)
    return True


_KEEP_POINTS_AT_COMMIT = AtCommit(_KEEP_POINTS_SQL, prepare=True, member_id=Uuid(), day=Date())


def keep_new_points(session: Session, member_id: uuid.UUID, data: dict[str, Any], day: date) -> None:
    """``record_points`` of a posting the caller found not kept (the member locked, ``arrivals``): written with the
    commit (``kit.commit.at_commit``), no round trip of its own."""
    at_commit(session, _KEEP_POINTS_AT_COMMIT, _points_row(member_id, data, day))
    at_commit(session, *_overtaken(data, day))


def record_points_reversal(session: Session, member_id: uuid.UUID, data: dict[str, Any], today: date) -> bool:
    """Take reversed points back out, on the day of the posting reversed; False if already kept."""
    if session.get(MemberPoints, data["posting_id"]) is not None:
        return False
    original = session.get(MemberPoints, data["reverses_posting_id"])
    points = -tier_points(original.rule, data["points"]) if original is not None else -data["points"]
    session.add(MemberPoints(posting_id=data["posting_id"], member_id=member_id,
                             day=original.day if original is not None else today, points=points,
                             rule="reversal", reverses_posting_id=data["reverses_posting_id"]))
    return True


def record_top_up(session: Session, member_id: uuid.UUID, data: dict[str, Any], day: date) -> bool:
    if session.get(MemberTopUp, data["topup_id"]) is not None:
        return False
    session.add(MemberTopUp(topup_id=data["topup_id"], member_id=member_id, day=day, amount_minor=data["amount_minor"]))
    return True


def counted() -> Any:
    """A visit that counts: completed, not fully refunded (a full refund cancels the visit for members)."""
    return and_(MemberVisit.completed.is_(True), MemberVisit.fully_refunded.is_(False))


def net_spend() -> Any:
    """A visit's qualifying spend less its refunds (never below 0)."""
    return case((and_(counted(), MemberVisit.qualifying_minor > MemberVisit.refunded_minor),
                 MemberVisit.qualifying_minor - MemberVisit.refunded_minor), else_=0)


def counted_visit() -> Any:
    return case((counted(), 1), else_=0)


# the summary recomputed and written in one statement (a visit that counts: ``counted()``; its spend: ``net_spend()``)
_REFRESH_SUMMARY = AtCommit(
    "INSERT INTO member_activity (member_id, visits_total, spend_total_minor, first_visit_on, last_visit_on, "
    "first_paid_visit_on, updated_at) "
    "SELECT :member_id, count(*), coalesce(sum(CASE WHEN qualifying_minor > refunded_minor "
    "THEN qualifying_minor - refunded_minor ELSE 0 END), 0), min(day), max(day), "
    "min(CASE WHEN qualifying_minor > refunded_minor THEN day END), :now "
    "FROM member_visits WHERE member_id = :member_id AND completed IS true AND fully_refunded IS false "
    "ON CONFLICT (member_id) DO UPDATE SET visits_total = excluded.visits_total, "
    "spend_total_minor = excluded.spend_total_minor, first_visit_on = excluded.first_visit_on, "
    "last_visit_on = excluded.last_visit_on, first_paid_visit_on = excluded.first_paid_visit_on, "
    "updated_at = excluded.updated_at", prepare=True, member_id=Uuid(), now=UtcDateTime())


def refresh_summary(session: Session, member_id: uuid.UUID, now: datetime) -> None:
    """Recompute the member's all-time visit summary from its visits (a few rows, by index), in one upsert."""
    session.execute(_REFRESH_SUMMARY.statement, {"member_id": member_id, "now": now})


_KEEP_NEW_VISIT = AtCommit(
    "INSERT INTO member_visits (visit_id, member_id, branch, kind, day, completed_at, completed, qualifying_minor, "
    "refunded_minor, fully_refunded) VALUES (:visit_id, :member_id, :branch, :kind, :day, :completed_at, true, "
    ":qualifying_minor, 0, false)", prepare=True, member_id=Uuid(), day=Date(), completed_at=UtcDateTime())


def keep_new_visit(session: Session, member_id: uuid.UUID, data: dict[str, Any], zone: ZoneInfo,
                   now: datetime) -> None:
    """``record_visit`` of a visit the caller found without a row (the member locked, ``arrivals``): the visit and
    the refreshed summary written with the commit (``kit.commit.at_commit``), no round trip of their own."""
    at_commit(session, _KEEP_NEW_VISIT, {
        "visit_id": str(data["visit_id"]), "member_id": member_id, "branch": data["branch"], "kind": data["kind"],
        "day": local_date(data["completed_at"], zone), "completed_at": data["completed_at"],
        "qualifying_minor": data["qualifying_minor"]})
    at_commit(session, _REFRESH_SUMMARY, {"member_id": member_id, "now": now})


def window_sums(session: Session, member_ids: list[uuid.UUID], first: date, last: date,
                tier_kinds: tuple[str, ...]) -> dict[uuid.UUID, WindowSums]:
    """Each member's sums over the local days ``first``..``last`` (members without activity are left out)."""
    if not member_ids:
        return {}
    spend = visit_sums(session, member_ids, first, last, tier_kinds)
    points = dict(session.execute(
        select(MemberPoints.member_id, func.sum(MemberPoints.points))
        .where(MemberPoints.member_id.in_(member_ids), MemberPoints.day.between(first, last))
        .group_by(MemberPoints.member_id)
    ).all())
    top_ups = dict(session.execute(
        select(MemberTopUp.member_id, func.max(MemberTopUp.amount_minor))
        .where(MemberTopUp.member_id.in_(member_ids), MemberTopUp.day.between(first, last))
        .group_by(MemberTopUp.member_id)
    ).all())
    found: dict[uuid.UUID, WindowSums] = {}
    for member_id in set(spend) | set(points) | set(top_ups):
        net, tier_visits, visits = spend.get(member_id, (0, 0, 0))
        activity = Activity(spend_minor=net, largest_top_up_minor=int(top_ups.get(member_id) or 0),
                            points=max(int(points.get(member_id) or 0), 0), visits=tier_visits)
        found[member_id] = WindowSums(activity, spend_minor=net, visits=visits)
    return found


IdRange = tuple[uuid.UUID | None, uuid.UUID]
"""Members with ids after the first (exclusive; None: from the start) up to the second (inclusive)."""


def members_where(column: Any, member_ids: list[uuid.UUID] | None = None, id_range: IdRange | None = None) -> Any:
    """A batch of members as a condition: a list of ids, or a range of ids (one contiguous index range:
    what a batch job walking members in id order uses, instead of a thousand-item IN list)."""
    if id_range is None:
        return column.in_(member_ids or [])
    after, last = id_range
    return and_(column > after, column <= last) if after is not None else column <= last


def visit_sums(session: Session, member_ids: list[uuid.UUID] | None, first: date, last: date,
               tier_kinds: tuple[str, ...], id_range: IdRange | None = None) -> dict[uuid.UUID, tuple[int, int, int]]:
    """Per member over ``first``..``last``: (net spend, visits of the tier kinds, all visits)."""
    if not member_ids and id_range is None:
        return {}
    found: dict[uuid.UUID, tuple[int, int, int]] = {}
    for member_id, net, tier_visits, visits in session.execute(
        select(MemberVisit.member_id, func.sum(net_spend()),
               func.sum(case((and_(counted(), MemberVisit.kind.in_(tier_kinds)), 1), else_=0)),
               func.sum(counted_visit()))
        .where(members_where(MemberVisit.member_id, member_ids, id_range), MemberVisit.day.between(first, last))
        .group_by(MemberVisit.member_id)
    ):
        found[member_id] = (int(net or 0), int(tier_visits or 0), int(visits or 0))
    return found


def _window_of(model: Any) -> Any:
    return and_(model.member_id == bindparam("member_id"), model.day.between(bindparam("first"), bindparam("last")))


# built once (the upgrade check after every event runs them): ``window_sums`` for one member in one query
_POINTS_IN_WINDOW = select(func.sum(MemberPoints.points)).where(_window_of(MemberPoints)).scalar_subquery()
_VISITS_IN_WINDOW = select(
    func.coalesce(func.sum(net_spend()), 0).label("net"),
    func.coalesce(func.sum(case((and_(counted(), MemberVisit.kind.in_(bindparam("tier_kinds", expanding=True))), 1),
                                else_=0)), 0).label("tier_visits"),
).where(_window_of(MemberVisit)).subquery()
_ACTIVITY_OF = select(_VISITS_IN_WINDOW.c.net, _VISITS_IN_WINDOW.c.tier_visits, _POINTS_IN_WINDOW,
                      select(func.max(MemberTopUp.amount_minor)).where(_window_of(MemberTopUp)).scalar_subquery())
_POINTS_OF = select(_POINTS_IN_WINDOW)


def activity_of(session: Session, member_id: uuid.UUID, first: date, last: date,
                tier_kinds: tuple[str, ...]) -> Activity:
    """One member's tier activity over ``first``..``last``: ``window_sums`` in one query."""
    net, tier_visits, points, top_up = session.execute(_ACTIVITY_OF, {
        "member_id": member_id, "first": first, "last": last, "tier_kinds": list(tier_kinds)}).one()
    return Activity(spend_minor=int(net), largest_top_up_minor=int(top_up or 0), points=max(int(points or 0), 0),
                    visits=int(tier_visits))


def points_of(session: Session, member_id: uuid.UUID, first: date, last: date) -> int:
    """One member's points earned over ``first``..``last`` (the tier's points path; never below 0)."""
    return max(int(session.execute(_POINTS_OF, {"member_id": member_id, "first": first, "last": last}).scalar() or 0),
               0)


def summaries(session: Session, member_ids: list[uuid.UUID] | None,
              id_range: IdRange | None = None) -> dict[uuid.UUID, Any]:
    """The all-time visit summaries of a batch of members (rows with the summary's columns)."""
    if not member_ids and id_range is None:
        return {}
    table = MemberActivity.__table__
    rows = session.execute(select(table).where(members_where(table.c.member_id, member_ids, id_range)))
    return {row.member_id: row for row in rows}


def lifetime(session: Session, member_id: uuid.UUID) -> dict[str, Any]:
    """All-time figures for the tier page: visits, spend, first and last visits, largest top-up, points."""
    summary = session.get(MemberActivity, member_id)
    top_up = session.scalar(select(func.max(MemberTopUp.amount_minor)).where(MemberTopUp.member_id == member_id))
    points = session.scalar(select(func.sum(MemberPoints.points)).where(MemberPoints.member_id == member_id))
    return {
        "visits": summary.visits_total if summary else 0,
        "spend_minor": summary.spend_total_minor if summary else 0,
        "first_visit_on": summary.first_visit_on.isoformat() if summary and summary.first_visit_on else None,
        "last_visit_on": summary.last_visit_on.isoformat() if summary and summary.last_visit_on else None,
        "first_paid_visit_on": (summary.first_paid_visit_on.isoformat()
                                if summary and summary.first_paid_visit_on else None),
        "largest_top_up_minor": int(top_up or 0),
        "points_earned": max(int(points or 0), 0),
    }


def move(session: Session, from_id: uuid.UUID, to_id: uuid.UUID, ids: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    """Move activity rows from one member to another (a merge, or its reversal with ``ids``); returns what moved."""
    moved: dict[str, list[str]] = {}
    for name, model, key in (("visits", MemberVisit, MemberVisit.visit_id),
                             ("refunds", MemberVisitRefund, MemberVisitRefund.refund_id),
                             ("points", MemberPoints, MemberPoints.posting_id),
                             ("top_ups", MemberTopUp, MemberTopUp.topup_id)):
        query = select(key).where(model.member_id == from_id)
        if ids is not None:
            query = query.where(key.in_(ids.get(name) or []))
        keys = list(session.scalars(query))
        if keys:
            session.execute(update(model).where(key.in_(keys)).values(member_id=to_id))
        moved[name] = keys
    return moved


AUDIT_MAX_VISITS = 2000  # per ``visits_of`` call: the ids go into IN lists


def visits_of(session: Session, visit_ids: list[str]) -> list[dict[str, Any]]:
    """What each visit contributed to its member's tier spend and visit count, for the cross-service visit
    audit (records compares it with the bill): two queries for the whole batch, answers in the order asked."""
    ids = [str(visit_id) for visit_id in visit_ids]
    rows = {row.visit_id: row for row in session.scalars(select(MemberVisit).where(MemberVisit.visit_id.in_(ids)))}
    refunds = dict(session.execute(select(MemberVisitRefund.visit_id, func.count())
                                   .where(MemberVisitRefund.visit_id.in_(ids)).group_by(MemberVisitRefund.visit_id)).all())
    answers = []
    for visit_id in ids:
        row = rows.get(visit_id)
        counts = row is not None and bool(row.completed) and not row.fully_refunded
        qualifying, refunded = (row.qualifying_minor or 0, row.refunded_minor or 0) if row is not None else (0, 0)
        answers.append({
            "visit_id": visit_id, "known": row is not None, "member_id": str(row.member_id) if row else None,
            "completed": bool(row.completed) if row else False, "qualifying_minor": qualifying,
            "refunded_minor": refunded, "fully_refunded": bool(row.fully_refunded) if row else False,
            "refunds": int(refunds.get(visit_id, 0)), "visits_counted": 1 if counts else 0,
            "spend_counted_minor": max(qualifying - refunded, 0) if counts else 0,
        })
    return answers
