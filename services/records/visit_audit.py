"""The cross-service visit audit: walk the completed visits of a window in keyset pages, ask points and
members about each page in one call each, judge with ``rules/effects.py``, store the run and its findings.

Each page is read, judged and written in short transactions of its own, with the calls to points and
members between them (never inside a transaction: on SQLite that would hold the database's one gate for
the length of two RPCs). Visits completed within the settle window are left out (``until`` = start - settle),
and so are visits refunded within it: their events may still be on their way, which is not a mismatch.
A run is keyed (``nightly:<local day>`` or ``manual:<idempotency key>``): the same key is one run, started
again only if it failed or was abandoned.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import eventlet
from sqlalchemy import and_, case, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.kit.clock import isoformat, utcnow
from services.kit.db import Store
from services.kit.errors import Invalid
from services.kit.schemas import decode_cursor, encode_cursor
from services.kit.telemetry import gauge
from services.records.models import Visit, VisitAudit, VisitAuditFinding, VisitRefund
from services.records.rules import effects

AUDIT_MISMATCHES = gauge("careloop_audit_mismatches",
                         "Visits whose effects in points or members do not match their bill, by kind "
                         "(the latest finished visit audit)", ("kind",))
AUDIT_LAST_RUN = gauge("careloop_audit_last_run_timestamp_seconds", "When the latest visit audit finished")


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime  # exclusive: the run's start less the settle window
    settle: timedelta


@dataclass(frozen=True)
class Peers:
    """How the walk asks the other services: one call per page each."""

    points: Callable[[list[dict[str, Any]]], dict[str, Any]]  # points.visit_effects
    members: Callable[[list[str]], dict[str, Any]]  # members.visit_activity


def run_key(trigger: str, key: str) -> str:
    return f"{trigger}:{hashlib.sha256(key.encode()).hexdigest()[:40]}" if trigger == "manual" else f"{trigger}:{key}"


ABANDONED_AFTER = timedelta(hours=1)
"""A run still "running" this long after it started died with its process: the next claim of its key
starts it again (a run over 35 days of a large group takes minutes, tests/perf/RESULTS.md)."""


def claim(store: Store, key: str, trigger: str, window: Window, by: str, now: datetime) -> tuple[VisitAudit, bool]:
    """The run under ``key``: (new run, True); (the run that already has this key, False); or, when that
    run failed or was abandoned, the same run started again from the beginning (True): a retry under the
    same idempotency key, or the next hour's nightly check, repeats what did not finish."""
    started = {"state": "running", "since": window.since, "until": window.until,
               "settle_seconds": int(window.settle.total_seconds()), "visits_checked": 0, "visits_unsettled": 0,
               "mismatches": 0, "started_at": now, "finished_at": None, "started_by": by[:80], "error": None}
    try:
        with store.transaction() as session:
            audit = VisitAudit(id=uuid.uuid4(), run_key=key, trigger=trigger, **started)
            session.add(audit)
            session.flush()
            session.expunge(audit)
            return audit, True
    except IntegrityError:
        pass
    with store.transaction() as session:
        # one claimant wins the row: PostgreSQL re-checks the condition on the row it waited for
        again = session.execute(update(VisitAudit).where(
            VisitAudit.run_key == key,
            or_(VisitAudit.state == "failed",
                and_(VisitAudit.state == "running", VisitAudit.started_at < now - ABANDONED_AFTER)))
            .values(**started)).rowcount
        audit = session.scalars(select(VisitAudit).where(VisitAudit.run_key == key)
                                .execution_options(populate_existing=True)).one()
        if again:
            session.execute(delete(VisitAuditFinding).where(VisitAuditFinding.audit_id == audit.id))
        session.expunge(audit)
        return audit, bool(again)


Position = tuple[datetime, uuid.UUID]


def bills_page(session: Session, window: Window, after: Position | None,
               limit: int) -> tuple[list[tuple[effects.Bill, datetime | None]], Position | None]:
    """The next page of completed visits of the window as bills, each with its latest refund's time, and
    the position after it."""
    query = (select(Visit.id, Visit.member_id, Visit.qualifying_minor, Visit.refunded_qualifying_minor,
                    Visit.completed_at, Visit.import_key)
             .where(Visit.status == "completed", Visit.completed_at >= window.since, Visit.completed_at < window.until)
             .order_by(Visit.completed_at, Visit.id).limit(limit))
    if after is not None:
        query = query.where(or_(Visit.completed_at > after[0], and_(Visit.completed_at == after[0], Visit.id > after[1])))
    rows = session.execute(query).all()
    refunds = {visit_id: (count, bool(full), last) for visit_id, count, full, last in session.execute(
        select(VisitRefund.visit_id, func.count(), func.max(case((VisitRefund.full, 1), else_=0)),
               func.max(VisitRefund.refunded_at))
        .where(VisitRefund.visit_id.in_([row.id for row in rows])).group_by(VisitRefund.visit_id))} if rows else {}
    page = []
    for row in rows:
        count, full, last = refunds.get(row.id, (0, False, None))
        page.append((effects.Bill(str(row.id), str(row.member_id), row.qualifying_minor,
                                  row.refunded_qualifying_minor, full, count, row.completed_at,
                                  row.import_key is not None), last))
    return page, (rows[-1].completed_at, rows[-1].id) if rows else None


def refunded_since(session: Session, visit_ids: set[str], since: datetime) -> set[str]:
    """Which of these visits had a refund at or after ``since``."""
    query = (select(VisitRefund.visit_id).where(VisitRefund.visit_id.in_([uuid.UUID(v) for v in visit_ids]),
                                                VisitRefund.refunded_at >= since).distinct())
    return {str(visit_id) for visit_id in session.scalars(query)}


def judge(bills: list[effects.Bill], points: list[dict[str, Any]],
          members: list[dict[str, Any]]) -> list[tuple[effects.Bill, effects.Finding]]:
    """Every finding of a page, by the answers of points and members (in the order of ``bills``)."""
    by_points = {answer["visit_id"]: answer for answer in points}
    by_members = {answer["visit_id"]: answer for answer in members}
    found = []
    for bill in bills:
        for finding in effects.findings(bill, effects.PointsView.of(by_points[bill.visit_id]),
                                        effects.MembersView.of(by_members[bill.visit_id])):
            found.append((bill, finding))
    return found


def walk(store: Store, audit_id: uuid.UUID, window: Window, peers: Peers, started: datetime, batch: int) -> None:
    """Audit the window page by page; each page's findings and counts commit together."""
    position: Position | None = None
    settled_before = started - window.settle
    while True:
        with store.transaction() as session:
            page, position_next = bills_page(session, window, position, batch)
        if not page:
            return
        bills = [bill for bill, last_refund in page if last_refund is None or last_refund < settled_before]
        unsettled = len(page) - len(bills)
        found: list[tuple[effects.Bill, effects.Finding]] = []
        if bills:
            asked = [{"visit_id": b.visit_id, "refunded_minor": b.refunded_minor, "full": b.full,
                      "completed_at": isoformat(b.completed_at) if b.completed_at else None} for b in bills]
            asking_members = eventlet.spawn(peers.members, [b.visit_id for b in bills])  # both at once
            try:
                points = peers.points(asked)["items"]
            except Exception:
                asking_members.kill()
                raise
            members = asking_members.wait()["items"]
            found = judge(bills, points, members)
        with store.transaction() as session:
            if found:  # a refund made after the page was read is in flight, not a mismatch
                late = refunded_since(session, {bill.visit_id for bill, _finding in found}, settled_before)
                found = [(bill, finding) for bill, finding in found if bill.visit_id not in late]
                bills, unsettled = [bill for bill in bills if bill.visit_id not in late], unsettled + len(late)
            session.add_all([VisitAuditFinding(audit_id=audit_id, visit_id=uuid.UUID(bill.visit_id),
                                               member_id=uuid.UUID(bill.member_id), kind=finding.kind,
                                               reason=finding.reason[:300], expected=finding.expected,
                                               found=finding.found) for bill, finding in found])
            session.execute(update(VisitAudit).where(VisitAudit.id == audit_id).values(
                visits_checked=VisitAudit.visits_checked + len(bills),
                visits_unsettled=VisitAudit.visits_unsettled + unsettled,
                mismatches=VisitAudit.mismatches + len({bill.visit_id for bill, _finding in found})))
        position = position_next
        if len(page) < batch:
            return


def run(store: Store, key: str, trigger: str, window: Window, peers: Peers, by: str, now: datetime,
        batch: int) -> tuple[uuid.UUID, bool]:
    """Claim the run under ``key`` and, unless another has it or it finished, walk it to its end: (its id,
    whether it ran here). A failure is stored with the run (and raised): the next claim starts it again."""
    audit, new = claim(store, key, trigger, window, by, now)
    if new:
        try:
            walk(store, audit.id, window, peers, now, batch)
        except Exception as failed:
            finish(store, audit.id, utcnow(), error=f"{type(failed).__name__}: {failed}")
            raise
        finish(store, audit.id, utcnow())
    return audit.id, new


def finish(store: Store, audit_id: uuid.UUID, now: datetime, error: str | None = None) -> None:
    with store.transaction() as session:
        session.execute(update(VisitAudit).where(VisitAudit.id == audit_id).values(
            state="failed" if error else "finished", finished_at=now, error=error[:500] if error else None))


def latest(session: Session, finished_only: bool = True) -> VisitAudit | None:
    query = select(VisitAudit).order_by(VisitAudit.started_at.desc(), VisitAudit.id.desc()).limit(1)
    if finished_only:
        query = query.where(VisitAudit.state == "finished")
    return session.scalars(query).first()


def get(session: Session, audit_id: uuid.UUID) -> VisitAudit | None:
    return session.get(VisitAudit, audit_id)


def finding_after(cursor: str | None) -> int | None:
    """The finding a page cursor points after (``Invalid`` for a cursor this walk never made)."""
    after = decode_cursor(cursor)
    if after is None:
        return None
    if not isinstance(after.get("f"), int):
        raise Invalid("The page cursor is not valid; start again from the first page.",
                      {"cursor": ["Not a valid cursor."]})
    return after["f"]


def findings_page(session: Session, audit_id: uuid.UUID, limit: int,
                  after: int | None) -> tuple[list[VisitAuditFinding], str | None]:
    query = (select(VisitAuditFinding).where(VisitAuditFinding.audit_id == audit_id)
             .order_by(VisitAuditFinding.id).limit(limit + 1))
    if after is not None:
        query = query.where(VisitAuditFinding.id > after)
    rows = list(session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor({"f": rows[-1].id}) if more and rows else None


def mismatches_by_kind(session: Session, audit_id: uuid.UUID) -> dict[str, int]:
    """Visits with a finding of each kind (every kind named, 0 where none)."""
    counted = dict(session.execute(select(VisitAuditFinding.kind, func.count(func.distinct(VisitAuditFinding.visit_id)))
                                   .where(VisitAuditFinding.audit_id == audit_id)
                                   .group_by(VisitAuditFinding.kind)).all())
    return {kind: int(counted.get(kind, 0)) for kind in effects.KINDS}

