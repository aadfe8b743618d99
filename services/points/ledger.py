"""The points ledger: accounts, append-only postings, lots and their moves, on the points database.

Every change to a member's points locks the account row first, then writes one posting, the lot moves
that make it up, and the new balance — all in the caller's transaction. Operations touching several
accounts lock them in member-id order, so two of them never wait on each other. Lots are read only
under the account's lock, so they need no lock of their own.

Writes are prebuilt Core statements (an earn is four: the account upsert that locks the row and adds
the points in one go, then the posting, the lot and its move); the ORM's unit of work costs several
times that in CPU on the hottest path of the service. Lots that a change reads and edits are loaded
fresh (``populate_existing``) so that no ORM object can be stale after a Core write.

``lots.py`` decides which lots a change takes from; this module only applies its decisions.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Date, Select, Uuid, and_, bindparam, func, insert, or_, select, text, update
from sqlalchemy.orm import Session, aliased

from services.kit.commit import AtCommit, at_commit
from services.kit.db import prepared
from services.kit.errors import Conflict
from services.kit.models import UtcDateTime
from services.kit.paging import keyset_page
from services.kit.telemetry import counter
from services.points.models import PointsAccount, PointsLot, PointsLotMove, PointsPosting
from services.points.rules import lots as lot_rules


@dataclass(frozen=True)
class Entry:
    """What a posting records besides its points: where it came from and who made it."""

    source: str
    source_ref: str | None
    operator: str
    branch: str | None = None
    reason: str | None = None
    dedupe_key: str | None = None
    redemption_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Posted:
    """A posting just written by a Core statement, as a plain value (for answers, events and counters): building an
    ORM ``PointsPosting`` for it cost more CPU than the rest of its bookkeeping on a visit's earn."""

    id: int
    member_id: uuid.UUID
    kind: str
    rule: str | None
    points: int
    balance_after: int
    dedupe_key: str | None
    source: str
    source_ref: str | None
    branch: str | None
    operator: str
    reason: str | None
    basis_minor: int | None
    reverses_id: int | None
    redemption_id: uuid.UUID | None
    expires_on: date | None
    created_at: datetime


Posting = PointsPosting | Posted
"""A posting as read (the ORM's) or as just written (``Posted``): the same attributes."""


@dataclass(frozen=True)
class Account:
    """An account as read under its lock."""

    member_id: uuid.UUID
    balance: int
    earned_total: int


# Create the account if needed, add to its balance and earned total, lock it, return the new values.
# ON CONFLICT DO UPDATE takes the row lock on PostgreSQL (SQLite is serialised by the kit's gate); the
# same SQL runs on both. Written as text because SQLAlchemy cannot cache an upsert construct: building
# and compiling it on every call cost more than the rest of an earn.
EARNED = counter("careloop_points_earned_total", "Points earned", ("rule", "branch"))
REDEEMED = counter("careloop_points_redeemed_total", "Points spent on rewards and bills", ("kind", "branch"))
REVERSED = counter("careloop_points_reversed_total", "Points taken back by refunds", ())
EXPIRED = counter("careloop_points_expired_total", "Points expired", ())

_UPSERT = text(
    "INSERT INTO points_accounts (member_id, balance, earned_total, created_at, updated_at) "
    "VALUES (:member, :delta, :earned, :now, :now) "
    "ON CONFLICT (member_id) DO UPDATE SET balance = points_accounts.balance + excluded.balance, "
    "earned_total = points_accounts.earned_total + excluded.earned_total, updated_at = excluded.updated_at "
    "RETURNING balance, earned_total",
).bindparams(bindparam("member", type_=Uuid()), bindparam("now", type_=UtcDateTime())).columns(
    balance=BigInteger(), earned_total=BigInteger())


# An earn on PostgreSQL in one round trip: the account upsert above (which locks the row), the posting,
# its lot and the lot's move, and — when the account was in debt — paying the debt from the new lot,
# exactly as the statement-by-statement path below does (kept for SQLite, which has no data-modifying
# CTEs). ``paid`` is the debt there was before, up to the points credited. ``debt`` is skipped whole unless
# there is one to pay (the sub-select is a one-time filter: no read of points_lots at all), and finds the debt lot
# by ``ix_points_lots_debt`` when there is (before both, every earn scanned the whole lots table).
_EARN_SQL = """
WITH account AS (
  INSERT INTO points_accounts (member_id, balance, earned_total, created_at, updated_at)
  VALUES (:member, :points, :points, :now, :now)
  ON CONFLICT (member_id) DO UPDATE SET balance = points_accounts.balance + excluded.balance,
    earned_total = points_accounts.earned_total + excluded.earned_total, updated_at = excluded.updated_at
  RETURNING balance, LEAST(GREATEST(:points - balance, 0), :points) AS paid),
posting AS (
  INSERT INTO points_postings (member_id, kind, rule, points, balance_after, dedupe_key, source, source_ref,
                               branch, operator, reason, basis_minor, expires_on, created_at)
  SELECT :member, 'earn', :rule, :points, account.balance, :dedupe_key, :source, :source_ref, :branch,
         :operator, :reason, CAST(:basis_minor AS BIGINT), :expires_on, :now FROM account
  RETURNING id),
lot AS (
  INSERT INTO points_lots (member_id, posting_id, kind, points, remaining, expires_on, warned, created_at)
  SELECT :member, posting.id, 'earn', :points, :points - account.paid, :expires_on, false, :now
  FROM posting, account
  RETURNING id, posting_id),
debt AS (
  UPDATE points_lots SET remaining = points_lots.remaining + account.paid FROM account
  WHERE (SELECT paid FROM account) > 0 AND points_lots.member_id = :member AND points_lots.kind = 'debt'
  RETURNING points_lots.id),
moves AS (
  INSERT INTO points_lot_moves (lot_id, posting_id, points)
  SELECT lot.id, lot.posting_id, :points FROM lot
  UNION ALL SELECT lot.id, lot.posting_id, -account.paid FROM lot, account WHERE account.paid > 0
  UNION ALL SELECT debt.id, lot.posting_id, account.paid FROM debt, lot, account)
SELECT posting.id, account.balance FROM posting, account
"""
_EARN_PG = prepared(text(_EARN_SQL).bindparams(bindparam("member", type_=Uuid()), bindparam("now", type_=UtcDateTime()),
                                               bindparam("expires_on", type_=Date()))
                    .columns(id=BigInteger(), balance=BigInteger()))  # planned once per connection (kit.db.prepared)
_earns_pg: dict[int, Any] = {}  # number of earns -> their statement, built once


def _earns_in_one_trip(count: int) -> Any:
    """``count`` earns (``_EARN_SQL`` each, parameters suffixed ``_0``, ``_1``...) one after the other in one query,
    then their postings' ids and balances in the order they were made (psycopg2 answers the last statement): each
    statement sees what the one before it wrote, exactly as ``count`` queries would."""
    statement = _earns_pg.get(count)
    if statement is None:
        parts = [re.sub(r":(\w+)", rf":\1_{number}", _EARN_SQL.strip()) for number in range(count)]
        keys = ", ".join(f":dedupe_key_{number}" for number in range(count))
        sql = "; ".join(parts) + f"; SELECT id, balance_after FROM points_postings WHERE dedupe_key IN ({keys}) ORDER BY id"
        types = [bindparam(f"{name}_{number}", type_=type_) for number in range(count)
                 for name, type_ in (("member", Uuid()), ("now", UtcDateTime()), ("expires_on", Date()))]
        statement = _earns_pg[count] = prepared(  # each earn and the read prepared once per connection
            text(sql).bindparams(*types).columns(id=BigInteger(), balance_after=BigInteger()))
    return statement


_INSERT_POSTING = insert(PointsPosting).returning(PointsPosting.id)
_INSERT_LOT = insert(PointsLot).returning(PointsLot.id)
_INSERT_MOVES = insert(PointsLotMove)
_PAY_DEBT = (update(PointsLot).where(PointsLot.member_id == bindparam("member"), PointsLot.kind == "debt")
             .values(remaining=PointsLot.remaining + bindparam("paid")).returning(PointsLot.id))
_POSTED = select(PointsPosting.id).where(PointsPosting.dedupe_key == bindparam("key"))


def _change(session: Session, member_id: uuid.UUID, delta: int, earned: int, now: datetime) -> Account:
    row = session.execute(_UPSERT, {"member": member_id, "delta": delta, "earned": earned, "now": now}).one()
    return Account(member_id, row.balance, row.earned_total)


def lock_account(session: Session, member_id: uuid.UUID, now: datetime) -> Account:
    """The member's account, created if it is the first posting, locked until the transaction ends."""
    return _change(session, member_id, 0, 0, now)


def lock_accounts(session: Session, member_ids: Iterable[uuid.UUID], now: datetime) -> dict[uuid.UUID, Account]:
    """Several accounts, locked in member-id order (the one order every multi-account change uses)."""
    return {member_id: lock_account(session, member_id, now) for member_id in sorted(set(member_ids), key=str)}


# ``lock_account`` of many members in one statement (PostgreSQL): the same upsert, the rows in member-id order
_OPEN_MANY_PG = text(
    "INSERT INTO points_accounts (member_id, balance, earned_total, created_at, updated_at) "
    "SELECT member, 0, 0, :now, :now FROM unnest(CAST(:members AS uuid[])) AS member ORDER BY member "
    "ON CONFLICT (member_id) DO UPDATE SET balance = points_accounts.balance + excluded.balance, "
    "earned_total = points_accounts.earned_total + excluded.earned_total, updated_at = excluded.updated_at"
).bindparams(bindparam("now", type_=UtcDateTime()))


def open_accounts(session: Session, member_ids: Iterable[uuid.UUID], now: datetime) -> None:
    """``lock_accounts`` when nothing is read back (an import's new members): one statement on PostgreSQL."""
    keys = sorted(set(member_ids), key=str)
    if session.get_bind().dialect.name != "postgresql":
        lock_accounts(session, keys, now)
    elif keys:
        session.execute(_OPEN_MANY_PG, {"members": [str(key) for key in keys], "now": now})


def find_account(session: Session, member_id: uuid.UUID) -> PointsAccount | None:
    return session.get(PointsAccount, member_id)


def posted(session: Session, dedupe_key: str) -> bool:
    """Whether a posting was made under ``dedupe_key`` (read under the account lock: then it is final)."""
    return session.execute(_POSTED, {"key": dedupe_key}).first() is not None


# A posting on PostgreSQL in one round trip: the account's upsert (``_UPSERT``: it locks the row and moves the
# balance), then the posting with the balance it left (was two: the upsert, then the posting's insert)
_POSTING_PG = text("""
WITH account AS (
  INSERT INTO points_accounts (member_id, balance, earned_total, created_at, updated_at)
  VALUES (:member_id, :points, :earned, :created_at, :created_at)
  ON CONFLICT (member_id) DO UPDATE SET balance = points_accounts.balance + excluded.balance,
    earned_total = points_accounts.earned_total + excluded.earned_total, updated_at = excluded.updated_at
  RETURNING balance)
INSERT INTO points_postings (member_id, kind, rule, points, balance_after, dedupe_key, source, source_ref, branch,
                             operator, reason, basis_minor, reverses_id, redemption_id, expires_on, created_at)
VALUES (:member_id, :kind, :rule, :points, (SELECT balance FROM account), :dedupe_key, :source, :source_ref, :branch,
        :operator, :reason, :basis_minor, :reverses_id, :redemption_id, :expires_on, :created_at)
RETURNING id, balance_after
""").bindparams(bindparam("member_id", type_=Uuid()), bindparam("redemption_id", type_=Uuid()),
                bindparam("created_at", type_=UtcDateTime()), bindparam("expires_on", type_=Date())).columns(
    id=BigInteger(), balance_after=BigInteger())


def _posting(session: Session, member_id: uuid.UUID, kind: str, points: int, entry: Entry, now: datetime,
             rule: str | None = None, basis_minor: int | None = None, reverses_id: int | None = None,
             expires_on: date | None = None, earned: int = 0) -> Posting:
    """Write a posting and move the account's balance by ``points`` (and its earned total by ``earned``).
    Returns the posting as a detached object (for answers and events)."""
    values = {"member_id": member_id, "kind": kind, "rule": rule, "points": points,
              "dedupe_key": entry.dedupe_key, "source": entry.source,
              "source_ref": entry.source_ref, "branch": entry.branch, "operator": entry.operator[:160],
              "reason": entry.reason, "basis_minor": basis_minor, "reverses_id": reverses_id,
              "redemption_id": entry.redemption_id, "expires_on": expires_on, "created_at": now}
    if session.get_bind().dialect.name == "postgresql":
        row = session.execute(_POSTING_PG, {**values, "earned": earned}).one()
        return Posted(id=row.id, balance_after=row.balance_after, **values)
    account = _change(session, member_id, points, earned, now)
    posting_id = session.execute(_INSERT_POSTING, {**values, "balance_after": account.balance}).scalar_one()
    return Posted(id=posting_id, balance_after=account.balance, **values)


def _move(session: Session, posting: Posting, moves: list[tuple[int, int]]) -> None:
    rows = [{"lot_id": lot_id, "posting_id": posting.id, "points": points} for lot_id, points in moves if points]
    if rows:
        session.execute(_INSERT_MOVES, rows)


def _open_lots(session: Session, member_id: uuid.UUID) -> list[PointsLot]:
    query = (select(PointsLot).where(PointsLot.member_id == member_id, PointsLot.remaining != 0)
             .order_by(PointsLot.expires_on, PointsLot.id).execution_options(populate_existing=True))
    return list(session.scalars(query))


def last_postings(until: datetime) -> Select:
    """Each member's last posting written at or before ``until`` (its member, time and id): what the lots export
    pages through (``kit.exports.changed_page``, by ``ix_points_postings_export``) to find the members whose points
    changed, each once, at its last change, as it paged the accounts by their ``updated_at`` before pts0013. Every
    change of a member's lots is made by a posting in the same transaction. A posting is the last one when no
    later one of its member (``ix_points_postings_history``) is there."""
    later = aliased(PointsPosting)
    return select(PointsPosting.member_id, PointsPosting.created_at, PointsPosting.id).where(
        ~select(later.id).where(later.member_id == PointsPosting.member_id, later.created_at <= until,
                                or_(later.created_at > PointsPosting.created_at,
                                    and_(later.created_at == PointsPosting.created_at, later.id > PointsPosting.id)))
        .exists())


def open_lots_of(session: Session, member_ids: list[uuid.UUID]) -> list[PointsLot]:
    """The lots with points left (not debt) of ``member_ids``, a member's in the order they are spent: an
    export page's (``export_points_lots``)."""
    if not member_ids:
        return []
    return list(session.scalars(select(PointsLot).where(PointsLot.member_id.in_(member_ids), PointsLot.kind == "earn",
                                                        PointsLot.remaining > 0)
                                .order_by(PointsLot.member_id, PointsLot.expires_on, PointsLot.id)))


def _debt_lot(session: Session, member_id: uuid.UUID, now: datetime) -> PointsLot:
    query = (select(PointsLot).where(PointsLot.member_id == member_id, PointsLot.kind == "debt")
             .execution_options(populate_existing=True))
    lot = session.scalars(query).first()
    if lot is None:
        lot = PointsLot(member_id=member_id, posting_id=None, kind="debt", points=0, remaining=0,
                        expires_on=None, warned=False, created_at=now)
        session.add(lot)
        session.flush()
    return lot


def _apply_takes(lots_by_id: dict[int, PointsLot], takes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    for lot_id, taken in takes:
        lots_by_id[lot_id].remaining -= taken
    return [(lot_id, -taken) for lot_id, taken in takes]


def _settle_debt(session: Session, member_id: uuid.UUID, debt_before: int, now: datetime) -> list[tuple[int, int]]:
    """Pay off a debt from points just credited: a debt lot and spendable lots are never open together."""
    if debt_before <= 0:
        return []
    positive = {lot.id: lot for lot in _open_lots(session, member_id) if lot.remaining > 0}
    takes, _short = lot_rules.take([lot_rules.Lot(lot.id, lot.remaining, lot.expires_on) for lot in positive.values()],
                                   debt_before)
    paid = sum(taken for _lot, taken in takes)
    if not paid:
        return []
    debt_lot = _debt_lot(session, member_id, now)
    debt_lot.remaining += paid
    return _apply_takes(positive, takes) + [(debt_lot.id, paid)]


def earn(session: Session, member_id: uuid.UUID, points: int, rule: str, entry: Entry, expires_on: date,
         now: datetime, basis_minor: int | None = None) -> Posting:
    """Credit ``points`` in a new lot expiring on ``expires_on``; a debt is paid off from it first."""
    if points <= 0:
        raise ValueError("an earn posts a positive number of points")
    if session.get_bind().dialect.name == "postgresql":
        return _earn_in_one_trip(session, member_id, points, rule, entry, expires_on, now, basis_minor)
    posting = _posting(session, member_id, "earn", points, entry, now, rule=rule, basis_minor=basis_minor,
                       expires_on=expires_on, earned=points)
    paid = min(max(points - posting.balance_after, 0), points)  # the debt there was before, up to the points
    lot_id = session.execute(_INSERT_LOT, {
        "member_id": member_id, "posting_id": posting.id, "kind": "earn", "points": points,
        "remaining": points - paid, "expires_on": expires_on, "warned": False, "created_at": now}).scalar_one()
    moves = [(lot_id, points)]
    if paid:
        debt_lot_id = session.execute(_PAY_DEBT, {"member": member_id, "paid": paid}).scalar_one()
        moves += [(lot_id, -paid), (debt_lot_id, paid)]
    _move(session, posting, moves)
    return posting


def _earn_in_one_trip(session: Session, member_id: uuid.UUID, points: int, rule: str, entry: Entry,
                      expires_on: date, now: datetime, basis_minor: int | None) -> Posting:
    values = _earn_values(member_id, points, rule, entry, expires_on, now, basis_minor)
    row = session.execute(_EARN_PG, {**values, "member": member_id, "now": now}).one()
    return Posted(id=row.id, balance_after=row.balance, **values)


def _earn_values(member_id: uuid.UUID, points: int, rule: str, entry: Entry, expires_on: date, now: datetime,
                 basis_minor: int | None) -> dict[str, Any]:
    return {"member_id": member_id, "kind": "earn", "rule": rule, "points": points,
            "dedupe_key": entry.dedupe_key, "source": entry.source, "source_ref": entry.source_ref,
            "branch": entry.branch, "operator": entry.operator[:160], "reason": entry.reason,
            "basis_minor": basis_minor, "reverses_id": None, "redemption_id": None, "expires_on": expires_on,
            "created_at": now}


@dataclass(frozen=True)
class Earn:
    """One earn of ``earn_all``: ``earn``'s arguments."""

    member_id: uuid.UUID
    points: int
    rule: str
    entry: Entry
    expires_on: date
    basis_minor: int | None = None


def earn_all(session: Session, earns: list[Earn], now: datetime) -> list[Posting]:
    """``earn`` each of ``earns``, in order; on PostgreSQL in one round trip (each has a dedupe key)."""
    if len(earns) < 2 or session.get_bind().dialect.name != "postgresql" or any(
            earn.entry.dedupe_key is None for earn in earns):
        return [earn(session, e.member_id, e.points, e.rule, e.entry, e.expires_on, now, e.basis_minor) for e in earns]
    params, values = {}, []
    for number, e in enumerate(earns):
        if e.points <= 0:
            raise ValueError("an earn posts a positive number of points")
        earned = _earn_values(e.member_id, e.points, e.rule, e.entry, e.expires_on, now, e.basis_minor)
        values.append(earned)
        params.update({f"{name}_{number}": value for name, value in
                       {**earned, "member": e.member_id, "now": now}.items()})
    rows = session.execute(_earns_in_one_trip(len(earns)), params).all()
    return [Posted(id=row.id, balance_after=row.balance_after, **earned) for row, earned in zip(rows, values, strict=True)]


def _stale(lots: list[PointsLot], today: date) -> list[PointsLot]:
    return [lot for lot in lots if lot.remaining > 0 and lot_rules.is_expired(lot.expires_on, today)]


def expire_stale(session: Session, member_id: uuid.UUID, today: date, operator: str,
                 now: datetime) -> Posting | None:
    """Expire lots past their date that the nightly job has not reached yet (it may run later in the
    day): points are never spendable after their expiry date, whatever the job's progress."""
    stale = _stale(_open_lots(session, member_id), today)
    if not stale:
        return None
    return expire(session, member_id, stale, Entry("expiry", None, operator, None, "expired before use"), now)


_TAKE = AtCommit("UPDATE points_lots SET remaining = remaining - :taken WHERE id = :lot")
_ADD_MOVE = AtCommit("INSERT INTO points_lot_moves (lot_id, posting_id, points) VALUES (:lot, :posting, :points)")


def spend(session: Session, member_id: uuid.UUID, points: int, kind: str, entry: Entry, today: date,
          now: datetime, locked: Account | None = None, later: bool = False) -> list[Posting]:
    """Take ``points`` from the lots that expire first; ``Conflict`` if the balance does not cover them.
    Returns the postings made: an expiry of stale lots if there were any, then the spend (last).
    ``locked``: the account as the caller locked it in this transaction (saves locking it again). ``later``: what
    the spend takes from its lots, and their moves, are written with the commit (the lots read here are then stale
    for the rest of the transaction: only for a caller that reads none of them again)."""
    if points <= 0:
        raise ValueError("a spend takes a positive number of points")
    balance = (locked or lock_account(session, member_id, now)).balance
    lots = _open_lots(session, member_id)
    postings = []
    stale = _stale(lots, today)
    if stale:
        postings.append(expire(session, member_id, stale, Entry("expiry", None, entry.operator, None,
                                                                "expired before use"), now))
        balance = postings[-1].balance_after
    if balance < points:
        raise Conflict(f"Not enough points: the balance is {max(balance, 0)}, this needs {points}.",
                       details={"balance": balance, "needed": points})
    positive = {lot.id: lot for lot in lots if lot.remaining > 0}
    takes, short = lot_rules.take([lot_rules.Lot(lot.id, lot.remaining, lot.expires_on)
                                   for lot in positive.values()], points)
    if short:  # balance and lots disagree: refuse rather than spend points that are not there
        raise RuntimeError(f"points account {member_id}: lots hold less than the balance")
    posting = _posting(session, member_id, kind, -points, entry, now)
    if later:
        for lot_id, taken in takes:
            at_commit(session, _TAKE, {"taken": taken, "lot": lot_id})
            at_commit(session, _ADD_MOVE, {"lot": lot_id, "posting": posting.id, "points": -taken})
    else:
        _move(session, posting, _apply_takes(positive, takes))
    return [*postings, posting]


_LOTS_AND_OWN = (select(PointsLot).where(PointsLot.member_id == bindparam("member"),
                                          (PointsLot.remaining != 0) | (PointsLot.posting_id == bindparam("earned")))
                 .order_by(PointsLot.expires_on, PointsLot.id).execution_options(populate_existing=True))


def reverse(session: Session, member_id: uuid.UUID, earned: Posting, points: int, entry: Entry,
            now: datetime, locked: bool = False) -> Posting:
    """Take back ``points`` of an earn: from its own lot, then the member's other lots, then as debt.
    ``locked``: the caller locked the account in this transaction already."""
    if not locked:
        lock_account(session, member_id, now)
    lots = list(session.scalars(_LOTS_AND_OWN, {"member": member_id, "earned": earned.id}))  # the open and its own
    open_lots = {lot.id: lot for lot in lots if lot.remaining > 0}
    own = next((lot for lot in lots if lot.posting_id == earned.id), None)
    if own is None:  # not in this account: the earn's lot moved to it with a merge (or it has none)
        own = session.scalars(select(PointsLot).where(PointsLot.posting_id == earned.id)
                              .execution_options(populate_existing=True)).first()
        if own is not None and own.member_id != member_id:
            own = session.scalars(select(PointsLot).where(PointsLot.moved_from_id == own.id,
                                                          PointsLot.member_id == member_id)
                                  .execution_options(populate_existing=True)).first()
    if own is not None:
        open_lots.setdefault(own.id, own)
    as_rules = {lot_id: lot_rules.Lot(lot.id, lot.remaining, lot.expires_on) for lot_id, lot in open_lots.items()}
    takes, debt = lot_rules.reversal_takes(as_rules.get(own.id) if own else None, as_rules.values(), points)
    posting = _posting(session, member_id, "reverse", -points, entry, now, reverses_id=earned.id, earned=-points)
    _settle(session, member_id, posting, open_lots, takes, debt, now)
    return posting


def reversed_so_far(session: Session, earned: Posting) -> int:
    total = session.scalar(select(func.coalesce(func.sum(PointsPosting.points), 0))
                           .where(PointsPosting.reverses_id == earned.id))
    return -int(total or 0)


def give_back(session: Session, member_id: uuid.UUID, spent: Posting, entry: Entry, today: date,
              now: datetime) -> list[Posting]:
    """Return a spend's points to the very lots it took them from. Points whose lot expired meanwhile
    come back expired (a second posting), so a cancellation never extends a lot's life."""
    debt_before = max(-lock_account(session, member_id, now).balance, 0)
    taken = session.execute(select(PointsLotMove.lot_id, PointsLotMove.points)
                            .where(PointsLotMove.posting_id == spent.id)).all()
    lots_by_id = {lot.id: lot for lot in session.scalars(select(PointsLot).where(
        PointsLot.id.in_([lot_id for lot_id, _ in taken])).execution_options(populate_existing=True))}
    points = -sum(p for _lot, p in taken)
    posting = _posting(session, member_id, "return", points, entry, now)
    moves = []
    for lot_id, moved in taken:
        lots_by_id[lot_id].remaining -= moved  # moved is negative: the points come back
        moves.append((lot_id, -moved))
    _move(session, posting, moves + _settle_debt(session, member_id, debt_before, now))
    postings = [posting]
    stale = [lot for lot in lots_by_id.values() if lot.remaining > 0 and lot_rules.is_expired(lot.expires_on, today)]
    if stale:
        postings.append(expire(session, member_id, stale, Entry("expiry", None, entry.operator, entry.branch,
                                                                 "returned after the points' expiry date"), now))
    return postings


@dataclass(frozen=True)
class Carried:
    """Points carried into an account by a transfer: how many, until when, from which lot of the other."""

    points: int
    expires_on: date | None
    from_lot_id: int | None
    warned: bool = False


def close_lots(session: Session, member_id: uuid.UUID, entry: Entry,
               now: datetime) -> tuple[Posting | None, list[Carried]]:
    """Empty every open lot of the account (locked by the caller) with one ``transfer_out`` posting;
    returns the posting (None if nothing was open) and what each lot held (a debt lot: negative)."""
    lots = _open_lots(session, member_id)
    net = sum(lot.remaining for lot in lots)
    if not lots or net == 0:
        return None, []
    before = [Carried(lot.remaining, lot.expires_on, lot.id, lot.warned) for lot in lots]
    posting = _posting(session, member_id, "transfer_out", -net, entry, now)
    _move(session, posting, [(lot.id, -lot.remaining) for lot in lots])
    for lot in lots:
        lot.remaining = 0
    session.flush()
    return posting, before


def credit(session: Session, member_id: uuid.UUID, kind: str, carried: list[Carried], entry: Entry,
           now: datetime) -> tuple[Posting, list[int]]:
    """Open one lot per ``carried`` (each keeps its own expiry date) under one posting of ``kind``; a debt
    of the account is paid off from them first, as from any points credited. Returns the posting and
    the new lots' ids, in the order of ``carried``."""
    points = sum(c.points for c in carried)
    if points <= 0 or any(c.points <= 0 for c in carried):
        raise ValueError("a transfer credits positive lots")
    debt_before = max(-lock_account(session, member_id, now).balance, 0)
    posting = _posting(session, member_id, kind, points, entry, now)
    lot_ids = [session.execute(_INSERT_LOT, {
        "member_id": member_id, "posting_id": None, "kind": "earn", "points": c.points, "remaining": c.points,
        "expires_on": c.expires_on, "warned": c.warned, "moved_from_id": c.from_lot_id, "created_at": now,
    }).scalar_one() for c in carried]
    moves = [(lot_id, c.points) for lot_id, c in zip(lot_ids, carried, strict=True)]
    _move(session, posting, moves + _settle_debt(session, member_id, debt_before, now))
    return posting, lot_ids


def charge(session: Session, member_id: uuid.UUID, kind: str, points: int, preferred: list[int], entry: Entry,
           now: datetime) -> Posting:
    """Take ``points`` under one posting of ``kind``: from the ``preferred`` lots first, then the account's
    other lots (spending order); what they cannot cover becomes debt, as for a reversal."""
    if points <= 0:
        raise ValueError("a transfer charges a positive number of points")
    lock_account(session, member_id, now)
    open_lots = {lot.id: lot for lot in _open_lots(session, member_id) if lot.remaining > 0}
    as_rules = {lot_id: lot_rules.Lot(lot.id, lot.remaining, lot.expires_on) for lot_id, lot in open_lots.items()}
    takes, debt = lot_rules.preferred_takes([as_rules[i] for i in preferred if i in as_rules], as_rules.values(),
                                            points)
    posting = _posting(session, member_id, kind, -points, entry, now)
    _settle(session, member_id, posting, open_lots, takes, debt, now)
    session.flush()
    return posting


def expired_from(session: Session, lot_ids: list[int]) -> dict[int, int]:
    """Points each lot lost to expiry postings (positive numbers), by lot id."""
    if not lot_ids:
        return {}
    rows = session.execute(select(PointsLotMove.lot_id, func.sum(PointsLotMove.points))
                           .join(PointsPosting, PointsPosting.id == PointsLotMove.posting_id)
                           .where(PointsLotMove.lot_id.in_(lot_ids), PointsPosting.kind == "expire")
                           .group_by(PointsLotMove.lot_id))
    return {lot_id: -int(total or 0) for lot_id, total in rows}


def expire(session: Session, member_id: uuid.UUID, expiring: list[PointsLot], entry: Entry,
           now: datetime) -> Posting:
    """Expire what is left in ``expiring`` (lots of this account, read under its lock)."""
    points = sum(lot.remaining for lot in expiring)
    posting = _posting(session, member_id, "expire", -points, entry, now)
    moves = []
    for lot in expiring:
        moves.append((lot.id, -lot.remaining))
        lot.remaining = 0
    _move(session, posting, moves)
    return posting


@dataclass(frozen=True)
class Expiring:
    """Lots of one member that expire together: (lot id, points left in it) each."""

    member_id: uuid.UUID
    expires_on: date
    lots: list[tuple[int, int]]


def lock_balances(session: Session, member_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Lock many accounts in one statement, in member-id order (the order every change locks in)."""
    query = (select(PointsAccount.member_id, PointsAccount.balance).where(PointsAccount.member_id.in_(member_ids))
             .order_by(PointsAccount.member_id).with_for_update())
    return dict(session.execute(query).all())


def expire_in_bulk(session: Session, groups: list[Expiring], balances: dict[uuid.UUID, int], operator: str,
                   now: datetime) -> list[dict[str, Any]]:
    """The nightly job's ``expire``, set-based: the same postings, lot moves and balances, for a whole
    batch of members in a handful of statements. The caller locked the accounts (``lock_balances``) and
    read the lots under that lock. Returns the postings made (member_id, id, points) for their events."""
    if not groups:
        return []
    rows = []
    for group in groups:
        points = sum(left for _lot, left in group.lots)
        balances[group.member_id] -= points
        rows.append({"member_id": group.member_id, "kind": "expire", "rule": None, "points": -points,
                     "balance_after": balances[group.member_id], "dedupe_key": None, "source": "expiry",
                     "source_ref": group.expires_on.isoformat(), "branch": None, "operator": operator[:160],
                     "reason": f"points earned to spend by {group.expires_on.isoformat()}", "basis_minor": None,
                     "reverses_id": None, "redemption_id": None, "expires_on": None, "created_at": now})
    ids = session.scalars(insert(PointsPosting).returning(PointsPosting.id, sort_by_parameter_order=True), rows).all()
    session.execute(insert(PointsLotMove), [{"lot_id": lot_id, "posting_id": posting_id, "points": -left}
                                            for group, posting_id in zip(groups, ids, strict=True)
                                            for lot_id, left in group.lots])
    lot_ids = [lot_id for group in groups for lot_id, _left in group.lots]
    session.execute(update(PointsLot).where(PointsLot.id.in_(lot_ids)).values(remaining=0)
                    .execution_options(synchronize_session=False))
    touched = {group.member_id for group in groups}
    session.execute(update(PointsAccount), [{"member_id": member_id, "balance": balances[member_id], "updated_at": now}
                                            for member_id in sorted(touched, key=str)])
    return [{"member_id": row["member_id"], "id": posting_id, "points": row["points"]}
            for row, posting_id in zip(rows, ids, strict=True)]


def expired_event(member_id: uuid.UUID, posting_id: int, points: int) -> tuple[str, dict[str, Any]]:
    return "points_expired", {"member_id": member_id, "posting_id": str(posting_id), "points": -points}


def deduct(session: Session, member_id: uuid.UUID, points: int, entry: Entry, today: date, now: datetime,
           cap_at_balance: bool) -> list[Posting]:
    """Take points away outside a redemption (a manual correction, a review penalty where switched on).
    With ``cap_at_balance`` it takes at most what the member has; otherwise ``Conflict`` if short."""
    if cap_at_balance:
        lock_account(session, member_id, now)
        expired = expire_stale(session, member_id, today, entry.operator, now)
        points = min(points, max(lock_account(session, member_id, now).balance, 0))
        if points <= 0:
            return [expired] if expired else []
        return ([expired] if expired else []) + spend(session, member_id, points, "deduct", entry, today, now)
    return spend(session, member_id, points, "deduct", entry, today, now)


def history(session: Session, member_id: uuid.UUID, limit: int, cursor: str | None) -> tuple[list[Posting],
                                                                                              str | None]:
    """A member's postings, newest first."""
    query = select(PointsPosting).where(PointsPosting.member_id == member_id)
    return keyset_page(session, query, PointsPosting.created_at, PointsPosting.id, limit, cursor, descending=True)


def open_lots(session: Session, member_id: uuid.UUID) -> list[PointsLot]:
    return _open_lots(session, member_id)


def summary(session: Session, member_id: uuid.UUID, account: PointsAccount | None, today: date,
            warning_days: int) -> dict[str, Any]:
    """Balance, debt and what expires when: what the desk reads to a member (``BalanceSchema``)."""
    balance = account.balance if account else 0
    by_date = session.execute(
        select(PointsLot.expires_on, func.sum(PointsLot.remaining))
        .where(PointsLot.member_id == member_id, PointsLot.remaining > 0)
        .group_by(PointsLot.expires_on).order_by(PointsLot.expires_on)).all()
    expiring, soon, stale = [], 0, 0
    for when, points in by_date:
        if when is None:
            continue
        if lot_rules.is_expired(when, today):
            stale += int(points)  # expires with the nightly job or the next spend, whichever comes first
            continue
        expiring.append({"expires_on": when, "points": int(points)})
        if lot_rules.warning_due(when, today, warning_days):
            soon += int(points)
    return {
        "member_id": member_id, "balance": balance - stale, "spendable": max(balance - stale, 0),
        "debt": max(-balance, 0), "pending": account.pending if account else 0,
        "earned_total": account.earned_total if account else 0, "expiring_within_warning": soon,
        "expiry_schedule": expiring,
    }


def count(posting: Posting) -> None:
    """Count a posting in the points metrics (earned, reversed, expired; redemptions count where they happen)."""
    if posting.kind == "earn":
        EARNED.labels(posting.rule, posting.branch or "").inc(posting.points)
    elif posting.kind == "reverse":
        REVERSED.inc(-posting.points)
    elif posting.kind == "expire":
        EXPIRED.inc(-posting.points)


def _settle(session: Session, member_id: uuid.UUID, posting: Posting, open_lots: dict[int, PointsLot],
            takes: list[tuple[int, int]], debt: int, now: datetime) -> None:
    """Record ``posting``'s moves: ``takes`` out of the open lots, and what they could not cover (``debt``) onto
    the member's debt lot."""
    moves = _apply_takes(open_lots, takes)
    if debt:
        debt_lot = _debt_lot(session, member_id, now)
        debt_lot.remaining -= debt
        moves.append((debt_lot.id, -debt))
    _move(session, posting, moves)


def event_of(posting: Posting, **extra: Any) -> tuple[str, dict[str, Any]] | None:
    """The event a posting announces (services/points/events.py), or None for postings nobody listens to.
    ``extra``: what a redemption adds (kind, reward_id, amount_minor, currency, bill_id)."""
    base = {"member_id": posting.member_id, "posting_id": str(posting.id)}
    if posting.kind == "earn":
        return "points_earned", {**base, "points": posting.points, "rule": posting.rule,
                                 "source_ref": posting.source_ref, "branch": posting.branch,
                                 "earned_at": posting.created_at, "expires_on": posting.expires_on}
    if posting.kind == "reverse":
        return "points_reversed", {**base, "reverses_posting_id": str(posting.reverses_id), "points": -posting.points,
                                   "reason": posting.reason, "source_ref": posting.source_ref}
    if posting.kind == "expire":
        return expired_event(posting.member_id, posting.id, posting.points)
    if posting.kind == "redeem":
        return "points_redeemed", {**base, "points": -posting.points, "branch": posting.branch,
                                   "redemption_id": posting.redemption_id, **extra}
    return None


def visit_events(postings: list[Posting]) -> list[tuple[str, dict[str, Any]]]:
    """What a completed visit's postings announce: its earns as one ``visit_points_earned`` a member (lines that
    differ in what the event says once — branch, time, expiry — go in events of their own), then the other
    postings' events (``event_of``: reversals of a refund that came first) in order."""
    earned: dict[tuple[Any, ...], dict[str, Any]] = {}
    others = []
    for posting in postings:
        if posting.kind != "earn":
            announced = event_of(posting)
            if announced is not None:
                others.append(announced)
            continue
        common = (posting.member_id, posting.source_ref, posting.branch, posting.created_at, posting.expires_on)
        event = earned.setdefault(common, {
            "member_id": posting.member_id, "visit_id": uuid.UUID(posting.source_ref), "branch": posting.branch,
            "earned_at": posting.created_at, "expires_on": posting.expires_on, "postings": []})
        event["postings"].append({"posting_id": str(posting.id), "points": posting.points, "rule": posting.rule})
    return [("visit_points_earned", event) for event in earned.values()] + others


# Many accounts created if needed and locked in one statement, in member-id order (the order of ``lock_accounts``:
# a uuid sorts as its text does), each as it stands once its lock was granted. PostgreSQL inserts (and takes each
# conflict's row lock) in the order the SELECT gives its rows.
_LOCK_MANY = text(
    "INSERT INTO points_accounts (member_id, balance, earned_total, created_at, updated_at) "
    "SELECT member_id, 0, 0, :now, :now FROM unnest(CAST(:members AS uuid[])) AS locked(member_id) ORDER BY member_id "
    "ON CONFLICT (member_id) DO UPDATE SET balance = points_accounts.balance, updated_at = excluded.updated_at "
    "RETURNING member_id, balance, earned_total",
).bindparams(bindparam("now", type_=UtcDateTime())).columns(member_id=Uuid(), balance=BigInteger(),
                                                           earned_total=BigInteger())


def lock_accounts_at_once(session: Session, member_ids: Iterable[uuid.UUID], now: datetime) -> dict[uuid.UUID, Account]:
    """``lock_accounts`` in one round trip on PostgreSQL, however many (a batch's: ``earn_locked``)."""
    members = sorted(set(member_ids), key=str)
    if session.get_bind().dialect.name != "postgresql" or not members:
        return lock_accounts(session, members, now)
    rows = session.execute(_LOCK_MANY, {"members": [str(member) for member in members], "now": now})
    return {row.member_id: Account(row.member_id, row.balance, row.earned_total) for row in rows}


# Earns onto accounts locked already and in no debt, in one statement on PostgreSQL, sent with the commit: their
# postings (each with the balance it leaves, worked out by the caller from the locked balances, in the earns' order),
# a lot each with its move, and each account's balance and earned total moved by the sum of its earns.
_EARN_LOCKED = AtCommit("""
WITH earn AS (
  SELECT * FROM unnest(CAST(:members AS uuid[]), CAST(:points AS bigint[]), CAST(:balances AS bigint[]),
                       CAST(:rules AS text[]), CAST(:dedupe_keys AS text[]), CAST(:sources AS text[]),
                       CAST(:source_refs AS text[]), CAST(:branches AS text[]), CAST(:operators AS text[]),
                       CAST(:reasons AS text[]), CAST(:bases AS bigint[]), CAST(:expiries AS date[]))
    WITH ORDINALITY AS earn(member_id, points, balance_after, rule, dedupe_key, source, source_ref, branch, operator,
                            reason, basis_minor, expires_on, position)),
posting AS (
  INSERT INTO points_postings (member_id, kind, rule, points, balance_after, dedupe_key, source, source_ref, branch,
                               operator, reason, basis_minor, expires_on, created_at)
  SELECT member_id, 'earn', rule, points, balance_after, dedupe_key, source, source_ref, branch, operator, reason,
         basis_minor, expires_on, :now FROM earn ORDER BY position
  RETURNING id, member_id, points, expires_on),
lot AS (
  INSERT INTO points_lots (member_id, posting_id, kind, points, remaining, expires_on, warned, created_at)
  SELECT member_id, id, 'earn', points, points, expires_on, false, :now FROM posting ORDER BY id
  RETURNING id, posting_id, points),
moves AS (INSERT INTO points_lot_moves (lot_id, posting_id, points) SELECT id, posting_id, points FROM lot),
account AS (
  UPDATE points_accounts SET balance = points_accounts.balance + earned.points,
    earned_total = points_accounts.earned_total + earned.points, updated_at = :now
  FROM (SELECT member_id, sum(points) AS points FROM earn GROUP BY member_id) AS earned
  WHERE points_accounts.member_id = earned.member_id)
SELECT count(*) FROM posting
""", now=UtcDateTime())


def earn_locked(session: Session, accounts: dict[uuid.UUID, Account], earns: list[Earn], now: datetime) -> None:
    """``earn`` each of ``earns`` (in order) onto ``accounts``, locked already (``lock_accounts_at_once``): on
    PostgreSQL the earns of accounts in no debt in one statement written with the commit (``kit.commit``: nothing
    in the transaction may read them back), whatever their number; an account in debt has its debt paid off by
    ``earn`` itself, one earn at a time (as on SQLite)."""
    if session.get_bind().dialect.name != "postgresql":
        together, apart = [], earns
    else:
        together = [e for e in earns if accounts[e.member_id].balance >= 0]
        apart = [e for e in earns if accounts[e.member_id].balance < 0]
    for e in apart:
        earn(session, e.member_id, e.points, e.rule, e.entry, e.expires_on, now, e.basis_minor)
    if not together:
        return
    balances = {member_id: account.balance for member_id, account in accounts.items()}
    columns: dict[str, list[Any]] = {name: [] for name in (
        "members", "points", "balances", "rules", "dedupe_keys", "sources", "source_refs", "branches", "operators",
        "reasons", "bases", "expiries")}
    for e in together:
        if e.points <= 0:
            raise ValueError("an earn posts a positive number of points")
        balances[e.member_id] += e.points
        for name, value in (("members", str(e.member_id)), ("points", e.points), ("balances", balances[e.member_id]),
                            ("rules", e.rule), ("dedupe_keys", e.entry.dedupe_key), ("sources", e.entry.source),
                            ("source_refs", e.entry.source_ref), ("branches", e.entry.branch),
                            ("operators", e.entry.operator[:160]), ("reasons", e.entry.reason),
                            ("bases", e.basis_minor), ("expiries", e.expires_on)):
            columns[name].append(value)
    at_commit(session, _EARN_LOCKED, {**columns, "now": now})
