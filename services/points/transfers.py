"""Family transfers: points or stored value moved from one member of a family to another, where the programme
allows it (``family_points_transfer``, ``family_wallet_transfer``). Which members form a family is the
members service's (asked once per transfer); this module moves the value.

Each side is a posting of its own ledger — ``transfer_out`` on the giver's, ``transfer_in`` on the receiver's —
written in one transaction with a ``points_family_transfers`` row (unique per idempotency key), so a transfer
is whole or absent and reconciliation holds for both accounts. Points keep their expiry dates: the giver's
lots are taken in spending order and the receiver gets a lot per lot taken, with its date (a receiver in
debt pays the debt from them first, as from any points credited). Stored value keeps principal and bonus
apart. Both accounts (or both cards) are locked in member-id order, the one order every multi-account change
uses, so two transfers in opposite directions wait for each other instead of deadlocking; the balance is
read under the lock, so concurrent transfers never spend the same points or money twice.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.kit.errors import Invalid
from services.kit.telemetry import counter
from services.points import ledger, wallet
from services.points.awards import Context
from services.points.ledger import Carried, Entry
from services.points.models import FamilyTransfer, MemberCopy, PointsAccount, PointsLot, PointsLotMove, WalletAccount
from services.points.rules import redemption

TRANSFERS = counter("careloop_points_family_transfers_total", "Family transfers made", ("kind",))


def check_family(family: dict[str, Any], giver: uuid.UUID, receiver: uuid.UUID) -> None:
    """Both members are in the family (as the members service answered); a member never gives to itself."""
    ids = {str(member["member_id"]) for member in family["members"]}
    if giver == receiver:
        raise Invalid("A transfer needs two different members.", {"to_member_id": ["The same member as the giver."]})
    missing = [str(m) for m in (giver, receiver) if str(m) not in ids]
    if missing:
        raise Invalid("Transfers are only between members of one family.",
                      {"members": [f"Not in this family: {', '.join(missing)}."]})


def _done(session: Session, key: str) -> FamilyTransfer | None:
    return session.scalars(select(FamilyTransfer).where(FamilyTransfer.dedupe_key == key)).first()


def _record(session: Session, ctx: Context, family_id: uuid.UUID, giver: MemberCopy, receiver: MemberCopy, kind: str,
            key: str, data: dict[str, Any], out_id: int, in_id: int, **amounts: int) -> FamilyTransfer:
    row = FamilyTransfer(id=uuid.uuid4(), family_id=family_id, from_member_id=giver.member_id,
                         to_member_id=receiver.member_id, kind=kind, out_posting_id=out_id, in_posting_id=in_id,
                         dedupe_key=key, branch=data["branch"], operator=ctx.operator[:160], reason=data.get("reason"),
                         created_at=ctx.now, **{"points": 0, "principal_minor": 0, "bonus_minor": 0, **amounts})
    session.add(row)
    session.flush()
    TRANSFERS.labels(kind).inc()
    return row


def move_points(session: Session, ctx: Context, family_id: uuid.UUID, giver: MemberCopy, receiver: MemberCopy,
                data: dict[str, Any], key: str) -> tuple[FamilyTransfer, list[Any]]:
    """Move ``data["points"]`` from giver to receiver; ``Conflict`` if the giver's spendable points are short.
    Returns the transfer and the postings made (a stale-lot expiry of the giver's may come first)."""
    dedupe = f"family:{key}"
    ledger.lock_accounts(session, [giver.member_id, receiver.member_id], ctx.now)
    done = _done(session, dedupe)
    if done is not None:
        return done, []
    points = data["points"]
    entry = Entry("family", str(family_id), ctx.operator, data["branch"], data.get("reason") or "family transfer",
                  dedupe_key=f"{dedupe}:out")
    postings = ledger.spend(session, giver.member_id, points, "transfer_out", entry, ctx.today, ctx.now)
    taken = session.execute(select(PointsLotMove.lot_id, PointsLotMove.points, PointsLot.expires_on)
                            .join(PointsLot, PointsLot.id == PointsLotMove.lot_id)
                            .where(PointsLotMove.posting_id == postings[-1].id).order_by(PointsLotMove.id)).all()
    carried = [Carried(-moved, expires_on, lot_id) for lot_id, moved, expires_on in taken]
    credited, _lots = ledger.credit(session, receiver.member_id, "transfer_in", carried,
                                    Entry("family", str(family_id), ctx.operator, data["branch"],
                                          data.get("reason") or "family transfer", dedupe_key=f"{dedupe}:in"),
                                    ctx.now)
    row = _record(session, ctx, family_id, giver, receiver, "points", dedupe, data, postings[-1].id, credited.id,
                  points=points)
    return row, [*postings, credited]


def move_stored_value(session: Session, ctx: Context, family_id: uuid.UUID, giver: MemberCopy, receiver: MemberCopy,
                      data: dict[str, Any], key: str) -> FamilyTransfer:
    """Move an amount of stored value (principal and bonus drawn as a payment would, and kept apart on the
    receiver's card); ``Conflict`` if the giver's card is short."""
    amount = wallet.check_currency(ctx, data["amount"], "amount")
    dedupe = f"family:{key}"
    cards = {member_id: wallet.lock_wallet(session, member_id, ctx)
             for member_id in sorted((giver.member_id, receiver.member_id), key=str)}
    done = _done(session, dedupe)
    if done is not None:
        return done
    out_card, in_card = cards[giver.member_id], cards[receiver.member_id]
    principal, bonus = redemption.wallet_split(amount, out_card.principal_minor, out_card.bonus_minor,
                                               ctx.programme.wallet_spend_order)
    reason = data.get("reason") or "family transfer"
    out = wallet.post(session, out_card, ctx, "transfer_out", -principal, -bonus, f"{dedupe}:out", data["branch"],
                      reason=reason)
    came = wallet.post(session, in_card, ctx, "transfer_in", principal, bonus, f"{dedupe}:in", data["branch"],
                       reason=reason)
    return _record(session, ctx, family_id, giver, receiver, "wallet", dedupe, data, out.id, came.id,
                   principal_minor=principal, bonus_minor=bonus)


def balances(session: Session, family: dict[str, Any], currency: str) -> dict[str, Any]:
    """Each member's points (balance, pending, debt) and stored value, and the family's totals: two queries."""
    ids = [uuid.UUID(str(member["member_id"])) for member in family["members"]]
    accounts = {row.member_id: row for row in session.scalars(select(PointsAccount).where(PointsAccount.member_id.in_(ids)))}
    cards = {row.member_id: row for row in session.scalars(select(WalletAccount).where(WalletAccount.member_id.in_(ids)))}
    members = []
    for member in family["members"]:
        member_id = uuid.UUID(str(member["member_id"]))
        account, card = accounts.get(member_id), cards.get(member_id)
        balance = account.balance if account else 0
        members.append({"member_id": member_id, "relation": member["relation"], "points": max(balance, 0),
                        "debt": max(-balance, 0), "pending": account.pending if account else 0,
                        "principal_minor": card.principal_minor if card else 0,
                        "bonus_minor": card.bonus_minor if card else 0})
    return {"family_id": family["id"], "contact_member_id": family["contact_member_id"], "currency": currency,
            "members": members, "points": sum(m["points"] for m in members),
            "principal_minor": sum(m["principal_minor"] for m in members),
            "bonus_minor": sum(m["bonus_minor"] for m in members)}


def refused_unless(allowed: bool, what: str) -> None:
    """Transfers are off unless the programme switches them on (SPEC: "where the programme allows")."""
    if not allowed:
        raise Invalid(f"The points programme does not allow transfers of {what} between family members.",
                      {"family": [f"Transfers of {what} are off in the points programme."]})
