"""Member merges: a duplicate's points, stored value and coupons move to the survivor, and back.

**Merge** (``member_merged``): every open lot of the duplicate moves to the survivor with its own
expiry date — a ``transfer_out`` posting empties the duplicate's lots, a ``transfer_in`` posting opens
one lot per lot moved on the survivor's account (paying off a debt the survivor had first, as any points
credited do). A duplicate's debt moves too: the survivor's lots pay it, what they cannot becomes the
survivor's debt. Stored value moves principal and bonus apart (a wallet posting on each side); coupons
still ``issued`` change owner. Each thing moved is a row of ``points_merge_moves`` under the merge id,
and the duplicate's id becomes an alias of the survivor (``roster``). Nothing is announced as earned or
reversed: the members service merges the 12-month activity itself.

**Reversal** (``member_unmerged``), the rule finance signs off:
- Points: the restored member gets back every lot the merge moved, with its own expiry date, less only
  what expired on the survivor meanwhile (it would have expired on the duplicate too). The survivor gives
  them back from the lots the merge opened first, then from its own lots; what it already spent and can
  no longer cover becomes the survivor's debt, paid off by its next points — the same rule as a refund
  after the points were spent. The transfer is zero-sum: no points are created or lost, and the member
  whose points were used by mistake is made whole. Lots given back past their date expire at once. A
  debt the merge moved goes back to the restored member; what the survivor had paid of it comes back to
  the survivor as points expiring as if earned today.
- Stored value is money and a wallet never goes negative: what is left of the moved principal and bonus
  goes back (each part at most what moved); the rest is recorded as ``wallet_shortfall_minor`` on the
  merge for finance to settle.
- Coupons moved and still issued go back; used, expired or voided ones stay where they are.

Both are applied once per merge id (``points_merges`` is written first and read under lock), whatever the
event id; a reversal that arrives before its merge is remembered, and the late merge then moves nothing.

Both first take the merged member's alias lock exclusively (``roster.hold_for_merge``): a command or event
naming that member either finished before (and the merge moves what it did) or starts after (and finds
the alias), never reads "not merged" and then acts on an account the merge has just emptied.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.kit.errors import Invalid
from services.kit.telemetry import counter
from services.points import ledger, roster, wallet
from services.points.awards import Context
from services.points.ledger import Carried, Entry
from services.points.models import Coupon, PointsMerge, PointsMergeMove, PointsPosting, WalletAccount
from services.points.rules.lots import still_owed

log = logging.getLogger(__name__)

MERGES = counter("careloop_points_merges_total", "Member merges applied to points, and reversals", ("action",))


@dataclass
class Outcome:
    """What applying a merge or its reversal did (``applied`` False: this merge id was already applied)."""

    applied: bool
    postings: list[PointsPosting] = field(default_factory=list)
    coupons: int = 0
    wallet_shortfall_minor: int = 0


def _claim(session: Session, data: dict[str, Any], now: datetime) -> PointsMerge:
    if data["survivor_id"] == data["merged_id"]:  # members never sends it; no retry could apply it
        raise Invalid("A member cannot be merged into itself.", {"merged_id": ["Same as survivor_id."]})
    merge_id = data["merge_id"]
    roster.insert_ignoring_duplicate(session, PointsMerge, {
        "merge_id": merge_id, "survivor_id": data["survivor_id"], "merged_id": data["merged_id"], "state": "new",
        "merged_at": None, "unmerged_at": None, "wallet_shortfall_minor": 0}, ["merge_id"])
    query = select(PointsMerge).where(PointsMerge.merge_id == merge_id).with_for_update()
    return session.scalars(query.execution_options(populate_existing=True)).one()


def _entry(ctx: Context, merge: PointsMerge, action: str, other: uuid.UUID) -> Entry:
    return Entry(action, str(merge.merge_id), ctx.operator, None, f"{action} with member {other}",
                 f"{action}:{merge.merge_id}:{other}")


def merge(session: Session, ctx: Context, data: dict[str, Any]) -> Outcome:
    """Move the duplicate's points, stored value and issued coupons to the survivor, once per merge id."""
    roster.hold_for_merge(session, data["merged_id"])
    row = _claim(session, data, ctx.now)
    if row.state != "new":
        return Outcome(False)
    survivor, merged = row.survivor_id, row.merged_id
    row.state, row.merged_at = "merged", ctx.now
    roster.set_alias(session, merged, survivor, ctx.now)
    outcome = Outcome(True)
    ledger.lock_accounts(session, (survivor, merged), ctx.now)
    out, carried = ledger.close_lots(session, merged, _entry(ctx, row, "merge", survivor), ctx.now)
    if out is not None:
        entry = _entry(ctx, row, "merge", merged)
        if out.points < 0:  # points: the lots reopen on the survivor with their dates
            posting, lot_ids = ledger.credit(session, survivor, "transfer_in", carried, entry, ctx.now)
            session.add_all(PointsMergeMove(merge_id=row.merge_id, kind="lot", from_lot_id=c.from_lot_id,
                                            to_lot_id=lot_id, points=c.points, expires_on=c.expires_on)
                            for c, lot_id in zip(carried, lot_ids, strict=True))
        else:  # a debt: the survivor's points pay it
            posting = ledger.charge(session, survivor, "transfer_in", out.points, [], entry, ctx.now)
            session.add(PointsMergeMove(merge_id=row.merge_id, kind="debt", from_lot_id=carried[0].from_lot_id,
                                        points=-out.points))
        outcome.postings += [out, posting]
    outcome.coupons = _move_coupons(session, row, merged, survivor, None, ctx)
    _move_wallet(session, ctx, row, merged, survivor)
    session.flush()
    return outcome


def unmerge(session: Session, ctx: Context, data: dict[str, Any]) -> Outcome:
    """Move back what the merge moved, by the rule in the module docstring, once per merge id."""
    roster.hold_for_merge(session, data["merged_id"])
    row = _claim(session, data, ctx.now)
    if row.state == "unmerged":
        return Outcome(False)
    first = row.state == "new"  # the reversal overtook its merge: nothing moved, nothing to move back
    row.state, row.unmerged_at = "unmerged", ctx.now
    survivor, restored = row.survivor_id, row.merged_id
    roster.clear_alias(session, restored, survivor, ctx.now)
    if first:
        return Outcome(True)
    moves = list(session.scalars(select(PointsMergeMove).where(PointsMergeMove.merge_id == row.merge_id)
                                 .order_by(PointsMergeMove.id)))
    outcome = Outcome(True)
    ledger.lock_accounts(session, (survivor, restored), ctx.now)
    outcome.postings += _points_back(session, ctx, row, [m for m in moves if m.kind in ("lot", "debt")])
    outcome.coupons = _move_coupons(session, row, survivor, restored,
                                    [m.coupon_id for m in moves if m.kind == "coupon"], ctx)
    for move in (m for m in moves if m.kind == "wallet"):
        outcome.wallet_shortfall_minor = _wallet_back(session, ctx, row, move)
    session.flush()
    return outcome


def _points_back(session: Session, ctx: Context, row: PointsMerge, moves: list[PointsMergeMove]) -> list[PointsPosting]:
    survivor, restored = row.survivor_id, row.merged_id
    out_entry, in_entry = _entry(ctx, row, "unmerge", restored), _entry(ctx, row, "unmerge", survivor)
    lots = [m for m in moves if m.kind == "lot"]
    debts = [m for m in moves if m.kind == "debt"]
    postings: list[PointsPosting] = []
    if lots:
        expired = ledger.expired_from(session, [m.to_lot_id for m in lots])
        owed = [(m, still_owed(m.points, expired.get(m.to_lot_id, 0))) for m in lots]
        owed = [(m, points) for m, points in owed if points > 0]
        if owed:
            postings.append(ledger.charge(session, survivor, "transfer_out", sum(p for _m, p in owed),
                                          [m.to_lot_id for m, _p in owed], out_entry, ctx.now))
            back = [Carried(points, m.expires_on, m.to_lot_id) for m, points in owed]
            posting, _lot_ids = ledger.credit(session, restored, "transfer_in", back, in_entry, ctx.now)
            postings.append(posting)
            expired_now = ledger.expire_stale(session, restored, ctx.today, ctx.operator, ctx.now)
            if expired_now is not None:
                postings.append(expired_now)
    for debt in debts:  # recorded as the (negative) points the duplicate's debt lot held
        paid = [Carried(-debt.points, ctx.expires_on(ctx.today), None)]
        postings.append(ledger.credit(session, survivor, "transfer_out", paid, out_entry, ctx.now)[0])
        postings.append(ledger.charge(session, restored, "transfer_in", -debt.points, [], in_entry, ctx.now))
    return postings


def _move_coupons(session: Session, row: PointsMerge, source: uuid.UUID, target: uuid.UUID,
                  only: list[uuid.UUID | None] | None, ctx: Context) -> int:
    """Issued coupons of ``source`` become ``target``'s (all of them, or ``only`` these); returns how many."""
    query = update(Coupon).where(Coupon.member_id == source, Coupon.state == "issued")
    if only is not None:
        if not only:
            return 0
        query = query.where(Coupon.id.in_(only))
    moved = list(session.scalars(query.values(member_id=target, updated_at=ctx.now).returning(Coupon.id)
                                 .execution_options(synchronize_session=False)))
    if only is None:
        session.add_all(PointsMergeMove(merge_id=row.merge_id, kind="coupon", coupon_id=coupon_id)
                        for coupon_id in moved)
    return len(moved)


def _lock_wallets(session: Session, ctx: Context, first: uuid.UUID, second: uuid.UUID) -> dict[uuid.UUID,
                                                                                               WalletAccount]:
    return {member_id: wallet.lock_wallet(session, member_id, ctx) for member_id in sorted((first, second), key=str)}


def _move_wallet(session: Session, ctx: Context, row: PointsMerge, merged: uuid.UUID, survivor: uuid.UUID) -> None:
    held = session.get(WalletAccount, merged)
    if held is None:
        return
    wallets = _lock_wallets(session, ctx, merged, survivor)
    principal, bonus = wallets[merged].principal_minor, wallets[merged].bonus_minor
    if principal + bonus <= 0:
        return
    _transfer(session, ctx, row, "merge", wallets[merged], wallets[survivor], principal, bonus)
    session.add(PointsMergeMove(merge_id=row.merge_id, kind="wallet", principal_minor=principal, bonus_minor=bonus))


def _wallet_back(session: Session, ctx: Context, row: PointsMerge, move: PointsMergeMove) -> int:
    wallets = _lock_wallets(session, ctx, row.survivor_id, row.merged_id)
    held = wallets[row.survivor_id]
    principal, bonus = min(move.principal_minor, held.principal_minor), min(move.bonus_minor, held.bonus_minor)
    if principal + bonus > 0:
        _transfer(session, ctx, row, "unmerge", held, wallets[row.merged_id], principal, bonus)
    row.wallet_shortfall_minor = move.principal_minor - principal + move.bonus_minor - bonus
    if row.wallet_shortfall_minor:
        log.warning("merge reversed with stored value already spent", extra={
            "merge_id": str(row.merge_id), "shortfall_minor": row.wallet_shortfall_minor})
    return row.wallet_shortfall_minor


def _transfer(session: Session, ctx: Context, row: PointsMerge, action: str, source: WalletAccount,
              target: WalletAccount, principal: int, bonus: int) -> None:
    reason = f"{action} {row.merge_id}"
    wallet.post(session, source, ctx, "transfer_out", -principal, -bonus, f"{action}:{row.merge_id}:out", None,
                reason=reason)
    wallet.post(session, target, ctx, "transfer_in", principal, bonus, f"{action}:{row.merge_id}:in", None,
                reason=reason)
