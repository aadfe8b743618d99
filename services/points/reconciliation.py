"""Reconciliation: proof that every balance is what its ledger says.

Points: for each account, ``balance = sum of its postings = sum of its open lots``, and its pending (locked)
points ``pending = sum of its pending ledger = what its holds still lock`` (holds.py). Stored value: for
each wallet, principal and bonus each equal the sum of their postings. Checked a batch of accounts at
a time (a range of member ids, one grouped query per table), so memory stays flat however many
accounts there are; the nightly job walks all of them and keeps the gauges current.

Links (``check_links``, the nightly job's last part): every posting and lot has its member's account, every lot
its posting, every move its lot and its posting — what foreign keys checked per row until pts0014 (issue 17: the
ledger writes these links only beside the row they name), checked here a range of ids at a time.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.kit.telemetry import gauge
from services.points.models import (
    PendingPosting,
    PointsAccount,
    PointsHold,
    PointsLot,
    PointsLotMove,
    PointsPosting,
    WalletAccount,
    WalletPosting,
)
from services.points.rules.programme import Programme

log = logging.getLogger(__name__)

MISMATCHES = gauge("careloop_points_reconciliation_mismatches",
                   "Accounts whose balance differs from their ledger at the last nightly check", ())
OUTSTANDING = gauge("careloop_points_outstanding", "Points held by members, at the last nightly check", ())
LIABILITY = gauge("careloop_points_liability_minor",
                  "What the points held are worth as cash deduction (minor units), at the last nightly check", ())
WALLET_OUTSTANDING = gauge("careloop_wallet_outstanding_minor", "Stored value held by members, at the last check",
                           ("part",))

MAX_REPORTED = 100
LINK_ROWS_PER_ACCOUNT = 20  # a nightly batch of links reads ``batch`` x this many rows' ids of one table


@dataclass
class Report:
    checked: int = 0
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    mismatch_count: int = 0
    points_outstanding: int = 0
    wallet_principal_minor: int = 0
    wallet_bonus_minor: int = 0

    def add(self, mismatch: dict[str, Any]) -> None:
        self.mismatch_count += 1
        if len(self.mismatches) < MAX_REPORTED:
            self.mismatches.append(mismatch)

    def merge(self, other: Report) -> None:
        self.checked += other.checked
        self.points_outstanding += other.points_outstanding
        self.wallet_principal_minor += other.wallet_principal_minor
        self.wallet_bonus_minor += other.wallet_bonus_minor
        for mismatch in other.mismatches:
            self.add(mismatch)
        self.mismatch_count += other.mismatch_count - len(other.mismatches)


def _in_one_snapshot(session: Session, key: Any, held: list[Any], sums: list[tuple[Any, Any, tuple[Any, ...]]],
                     after: uuid.UUID | None, limit: int, only: uuid.UUID | None) -> list[Any]:
    """Up to ``limit`` accounts after ``after`` (or only ``only``), each with what it holds (``held``
    columns) and the sum of each ledger column in ``sums`` for it — **one statement**, so PostgreSQL reads
    the accounts and their ledgers in one snapshot. Three statements at READ COMMITTED would see a
    posting committed between them and report a mismatch that is not there (false alarms at night)."""
    accounts = select(key.label("member_id"), *held).order_by(key).limit(limit)
    if only is not None:
        accounts = accounts.where(key == only)
    elif after is not None:
        accounts = accounts.where(key > after)
    accounts = accounts.cte("accounts")
    columns, joins = [], accounts
    for number, (member_column, value, where) in enumerate(sums):
        total = (select(member_column.label("member_id"), func.sum(value).label("total"))
                 .where(member_column.in_(select(accounts.c.member_id)), *where)
                 .group_by(member_column).cte(f"ledger_{number}"))
        joins = joins.outerjoin(total, total.c.member_id == accounts.c.member_id)
        columns.append(func.coalesce(total.c.total, 0))
    query = select(*accounts.c, *columns).select_from(joins).order_by(accounts.c.member_id)
    return session.execute(query).all()


def check_points(session: Session, after: uuid.UUID | None, limit: int,
                 only: uuid.UUID | None = None) -> tuple[Report, uuid.UUID | None]:
    """Check up to ``limit`` points accounts after ``after`` (in member-id order); returns the report
    and the last member id checked (None when there are no more)."""
    rows = _in_one_snapshot(session, PointsAccount.member_id, [PointsAccount.balance, PointsAccount.pending],
                            [(PointsPosting.member_id, PointsPosting.points, ()),
                             (PointsLot.member_id, PointsLot.remaining, (PointsLot.remaining != 0,)),
                             (PendingPosting.member_id, PendingPosting.points, ()),
                             (PointsHold.member_id, PointsHold.remaining, (PointsHold.remaining > 0,))],
                            after, limit, only)
    report = Report()
    for member_id, balance, pending, in_postings, in_lots, pending_postings, in_holds in rows:
        report.checked += 1
        report.points_outstanding += max(balance, 0)
        if not balance == in_postings == in_lots:
            report.add({"ledger": "points", "member_id": str(member_id), "balance": balance,
                        "sum_of_postings": int(in_postings), "sum_of_open_lots": int(in_lots)})
        elif not pending == pending_postings == in_holds:
            report.add({"ledger": "pending points", "member_id": str(member_id), "pending": pending,
                        "sum_of_pending_entries": int(pending_postings), "sum_of_holds": int(in_holds)})
    return report, (rows[-1].member_id if len(rows) == limit else None)


def check_wallets(session: Session, after: uuid.UUID | None, limit: int,
                  only: uuid.UUID | None = None) -> tuple[Report, uuid.UUID | None]:
    rows = _in_one_snapshot(session, WalletAccount.member_id,
                            [WalletAccount.principal_minor, WalletAccount.bonus_minor],
                            [(WalletPosting.member_id, WalletPosting.principal_minor, ()),
                             (WalletPosting.member_id, WalletPosting.bonus_minor, ())],
                            after, limit, only)
    report = Report()
    for member_id, held_principal, held_bonus, principal, bonus in rows:
        report.checked += 1
        report.wallet_principal_minor += held_principal
        report.wallet_bonus_minor += held_bonus
        if held_principal != principal or held_bonus != bonus:
            report.add({"ledger": "wallet", "member_id": str(member_id), "principal": held_principal,
                        "bonus": held_bonus, "sum_of_principal_postings": int(principal),
                        "sum_of_bonus_postings": int(bonus)})
    return report, (rows[-1].member_id if len(rows) == limit else None)


# What the foreign keys that pts0014 dropped guarded: each row of the ledger's tables, by id, names rows that exist
# (a posting and a lot their member's account, a lot its posting, a move its lot and its posting). The checks read a
# range of ids of one table a batch: (table, its id, what is broken: an SQL condition on the table's row)
_LINKS: tuple[tuple[Any, Any, tuple[tuple[str, Any], ...]], ...] = (
    (PointsPosting, PointsPosting.id, (
        ("no account", ~select(PointsAccount.member_id).where(PointsAccount.member_id == PointsPosting.member_id)
         .exists()),)),
    (PointsLot, PointsLot.id, (
        ("no account", ~select(PointsAccount.member_id).where(PointsAccount.member_id == PointsLot.member_id).exists()),
        ("no posting", PointsLot.posting_id.is_not(None)
         & ~select(PointsPosting.id).where(PointsPosting.id == PointsLot.posting_id).exists()))),
    (PointsLotMove, PointsLotMove.id, (
        ("no lot", ~select(PointsLot.id).where(PointsLot.id == PointsLotMove.lot_id).exists()),
        ("no posting", ~select(PointsPosting.id).where(PointsPosting.id == PointsLotMove.posting_id).exists()))),
)
LINK_TABLES = [table.__tablename__ for table, _id, _broken in _LINKS]


def check_links(session: Session, table: str, after: int, span: int) -> tuple[Report, int | None]:
    """Rows of the ledger's ``table`` with ids in ``(after, after + span]`` that name a row that is not there (one
    statement; a mismatch each). Returns the report and the id to continue after (None: no more rows)."""
    model, key, broken = next(link for link in _LINKS if link[0].__tablename__ == table)
    report = Report()
    window = (key > after) & (key <= after + span)
    for what, condition in broken:
        count = session.scalar(select(func.count()).select_from(model).where(window, condition)) or 0
        if count:
            shown = session.scalars(select(key).where(window, condition).order_by(key).limit(10)).all()
            for row_id in shown:
                report.add({"ledger": "points links", "table": table, "id": row_id, "broken": what})
            report.mismatch_count += count - len(shown)
    report.checked = session.scalar(select(func.count()).select_from(model).where(window)) or 0
    further = session.scalar(select(func.min(key)).where(key > after + span))
    return report, (None if further is None else further - 1)


def check_member(session: Session, member_id: uuid.UUID) -> Report:
    report, _ = check_points(session, None, 1, only=member_id)
    wallets, _ = check_wallets(session, None, 1, only=member_id)
    report.merge(wallets)
    return report


def nightly_step(batch: int, finished: Any) -> Any:
    """A ``kit.jobs`` step walking every points account, then every wallet; ``finished(totals)`` is
    called with the whole run's totals in the last batch's transaction (for the gauges)."""

    def step(session: Session, cursor: dict[str, Any] | None) -> tuple[dict[str, Any] | None, int]:
        state = cursor or {"ledger": "points", "after": None, "checked": 0, "mismatches": 0,
                           "points_outstanding": 0, "wallet_principal_minor": 0, "wallet_bonus_minor": 0}
        if state["ledger"] == "links":
            return _links_step(session, state, batch)
        after = uuid.UUID(state["after"]) if state["after"] else None
        check = check_points if state["ledger"] == "points" else check_wallets
        report, last = check(session, after, batch)
        for mismatch in report.mismatches:
            log.error("ledger out of balance", extra=mismatch)
        state = {**state, "checked": state["checked"] + report.checked,
                 "mismatches": state["mismatches"] + report.mismatch_count,
                 "points_outstanding": state["points_outstanding"] + report.points_outstanding,
                 "wallet_principal_minor": state["wallet_principal_minor"] + report.wallet_principal_minor,
                 "wallet_bonus_minor": state["wallet_bonus_minor"] + report.wallet_bonus_minor,
                 "after": str(last) if last else None}
        if last is None and state["ledger"] == "points":
            return {**state, "ledger": "wallet"}, report.checked
        if last is None:
            return {**state, "ledger": "links", "table": LINK_TABLES[0], "after": 0}, report.checked
        return state, report.checked

    def _links_step(session: Session, state: dict[str, Any], batch: int) -> tuple[dict[str, Any] | None, int]:
        report, last = check_links(session, state["table"], state["after"], batch * LINK_ROWS_PER_ACCOUNT)
        for mismatch in report.mismatches:
            log.error("ledger row names a row that is not there", extra=mismatch)
        state = {**state, "mismatches": state["mismatches"] + report.mismatch_count, "after": last}
        if last is None:
            following = LINK_TABLES.index(state["table"]) + 1
            if following == len(LINK_TABLES):
                finished(state)
                return None, report.checked
            state = {**state, "table": LINK_TABLES[following], "after": 0}
        return state, report.checked

    return step


def gauge_totals(totals: dict[str, Any], programme: Programme) -> None:
    """The nightly check's totals in the gauges (the liability at the programme's cash deduction rate)."""
    MISMATCHES.set(totals["mismatches"])
    OUTSTANDING.set(totals["points_outstanding"])
    LIABILITY.set(totals["points_outstanding"] * programme.currency_minor_per_unit // programme.cash_points_per_unit)
    WALLET_OUTSTANDING.labels("principal").set(totals["wallet_principal_minor"])
    WALLET_OUTSTANDING.labels("bonus").set(totals["wallet_bonus_minor"])
