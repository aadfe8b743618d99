"""Stored value (储值卡): money paid in ahead, kept as principal and bonus apart, in minor units.

The same guarantees as the points ledger: every change is a posting with a dedupe key, made under
the wallet row's lock together with the new balances; check constraints refuse a negative balance;
``reconciliation.py`` proves balances = sums of postings. Bonus is kept apart because it is not money
the member paid: it does not count as spend for tiers or points, and is not paid back in cash.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import BigInteger, Uuid, bindparam, column, func, insert, select, text
from sqlalchemy.orm import Session

from services.kit.commit import AtCommit, at_commit
from services.kit.db import dialect_insert
from services.kit.errors import Conflict, Invalid, NotFound
from services.kit.models import UtcDateTime
from services.kit.paging import keyset_page
from services.kit.telemetry import counter
from services.points.awards import Context
from services.points.models import MemberCopy, WalletAccount, WalletPosting
from services.points.roster import survivor_of
from services.points.rules import redemption

TOPPED_UP = counter("careloop_wallet_topped_up_minor_total", "Stored value paid in (minor units)", ("kind", "branch"))
PAID = counter("careloop_wallet_paid_minor_total", "Bills paid from stored value (minor units)", ("branch",))


def check_currency(ctx: Context, money: dict[str, Any], field: str) -> int:
    if money["currency"] != ctx.currency:
        raise Invalid(f"Stored value is kept in {ctx.currency}, not {money['currency']}.",
                      {field: {"currency": [f"Must be {ctx.currency}."]}})
    return money["amount"]


def lock_wallet(session: Session, member_id: uuid.UUID, ctx: Context) -> WalletAccount:
    """The member's wallet, created on first use, locked until the transaction ends, in one round trip: an
    upsert whose ``DO UPDATE`` (a no-op change) takes the row lock as ``FOR UPDATE`` would, waits for a
    concurrent holder, and returns the row as that holder committed it."""
    statement = dialect_insert(session, WalletAccount).values(
        member_id=member_id, currency=ctx.currency, principal_minor=0, bonus_minor=0, largest_top_up_minor=0,
        created_at=ctx.now, updated_at=ctx.now)
    statement = statement.on_conflict_do_update(index_elements=["member_id"],
                                                set_={"member_id": statement.excluded.member_id})
    return session.scalars(statement.returning(WalletAccount),
                           execution_options={"populate_existing": True}).one()


def existing(session: Session, dedupe_key: str) -> WalletPosting | None:
    return session.scalars(select(WalletPosting).where(WalletPosting.dedupe_key == dedupe_key)).first()


# PostgreSQL, one round trip: the wallet created if needed and locked (``lock_wallet``), then read with the posting
# already made under the dedupe key, with a snapshot taken once the lock was granted (was two: the lock, the read)
_LOCK_AND_FIND = text(
    "INSERT INTO wallet_accounts (member_id, currency, principal_minor, bonus_minor, largest_top_up_minor, created_at, "
    "updated_at) VALUES (:member, :currency, 0, 0, 0, :now, :now) "
    "ON CONFLICT (member_id) DO UPDATE SET member_id = excluded.member_id; "
    "SELECT member_id, currency, principal_minor, bonus_minor, largest_top_up_minor, created_at, updated_at, "
    "(SELECT id FROM wallet_postings WHERE dedupe_key = :dedupe) AS done_id FROM wallet_accounts WHERE member_id = :member"
).bindparams(bindparam("member", type_=Uuid()), bindparam("now", type_=UtcDateTime())).columns(
    *WalletAccount.__table__.columns, column("done_id", BigInteger()))
_INSERT_POSTING = insert(WalletPosting).returning(WalletPosting.id)
_MOVE_BALANCES = AtCommit("UPDATE wallet_accounts SET principal_minor = :principal, bonus_minor = :bonus, "
                          "largest_top_up_minor = :largest, updated_at = :now WHERE member_id = :member",
                          now=UtcDateTime())


def _claim(session: Session, ctx: Context, member: MemberCopy, dedupe_key: str,
           refused: str) -> tuple[WalletAccount, WalletPosting | None]:
    """The member's wallet, locked, and the posting already made under ``dedupe_key`` (a retried command), if any;
    a frozen or closed membership's card is ``refused`` anything new. On PostgreSQL the wallet is a detached copy
    of the locked row, to change with ``_post`` (its balances written with the commit)."""
    if session.get_bind().dialect.name == "postgresql":
        row = session.execute(_LOCK_AND_FIND, {"member": member.member_id, "currency": ctx.currency, "now": ctx.now,
                                               "dedupe": dedupe_key}).one()
        wallet = WalletAccount(**{name: getattr(row, name) for name in WalletAccount.__table__.columns.keys()})
        done = session.get(WalletPosting, row.done_id) if row.done_id is not None else None
    else:
        wallet = lock_wallet(session, member.member_id, ctx)
        done = existing(session, dedupe_key)
    if done is None and member.status != "active":
        raise Conflict(f"This membership is {member.status}: {refused}.")
    return wallet, done


def _post(session: Session, wallet: WalletAccount, ctx: Context, kind: str, principal: int, bonus: int,
          dedupe_key: str, branch: str | None, bill_id: str | None = None, reason: str | None = None) -> WalletPosting:
    """``post`` for a wallet from ``_claim``: on PostgreSQL the posting in one statement and the wallet's balances
    with the commit (nothing reads them back: the row stays locked until then)."""
    if session.get_bind().dialect.name != "postgresql":
        return post(session, wallet, ctx, kind, principal, bonus, dedupe_key, branch, bill_id=bill_id, reason=reason)
    wallet.principal_minor += principal
    wallet.bonus_minor += bonus
    wallet.updated_at = ctx.now
    values = {"member_id": wallet.member_id, "kind": kind, "principal_minor": principal, "bonus_minor": bonus,
              "principal_after": wallet.principal_minor, "bonus_after": wallet.bonus_minor, "currency": wallet.currency,
              "dedupe_key": dedupe_key, "bill_id": bill_id, "refunds_id": None, "branch": branch,
              "operator": ctx.operator[:160], "reason": reason, "created_at": ctx.now}
    posting_id = session.execute(_INSERT_POSTING, values).scalar_one()
    at_commit(session, _MOVE_BALANCES, {"principal": wallet.principal_minor, "bonus": wallet.bonus_minor,
                                        "largest": wallet.largest_top_up_minor, "now": ctx.now,
                                        "member": wallet.member_id})
    return WalletPosting(id=posting_id, **values)


def post(session: Session, wallet: WalletAccount, ctx: Context, kind: str, principal: int, bonus: int,
          dedupe_key: str, branch: str | None, bill_id: str | None = None, refunds_id: int | None = None,
          reason: str | None = None) -> WalletPosting:
    """Write a stored-value posting and move the wallet's balances (the caller locked the wallet)."""
    wallet.principal_minor += principal
    wallet.bonus_minor += bonus
    wallet.updated_at = ctx.now
    posting = WalletPosting(member_id=wallet.member_id, kind=kind, principal_minor=principal, bonus_minor=bonus,
                            principal_after=wallet.principal_minor, bonus_after=wallet.bonus_minor,
                            currency=wallet.currency, dedupe_key=dedupe_key, bill_id=bill_id, refunds_id=refunds_id,
                            branch=branch, operator=ctx.operator[:160], reason=reason, created_at=ctx.now)
    session.add(posting)
    session.flush()
    return posting


def top_up(session: Session, ctx: Context, member: MemberCopy, data: dict[str, Any], key: str,
           may_set_bonus: bool) -> tuple[WalletPosting, bool]:
    """Money paid in, with the bonus of the best top-up offer it reaches (or one set by a manager)."""
    amount = check_currency(ctx, data["amount"], "amount")
    if data.get("bonus") is not None:
        if not may_set_bonus:
            raise Invalid("Only a manager may set a top-up bonus by hand; offers apply by themselves.",
                          {"bonus": ["Not allowed for your role."]})
        bonus = check_currency(ctx, data["bonus"], "bonus")
    else:
        bonus = redemption.top_up_bonus(ctx.programme.top_up_offers, amount)
    dedupe = f"top_up:{key}"
    wallet, done = _claim(session, ctx, member, dedupe, "its card cannot be topped up")
    if done is not None:
        return done, False
    wallet.largest_top_up_minor = max(wallet.largest_top_up_minor, amount)
    return _post(session, wallet, ctx, "top_up", amount, bonus, dedupe, data["branch"], reason=data.get("note")), True


def pay(session: Session, ctx: Context, member: MemberCopy, data: dict[str, Any], key: str) -> tuple[WalletPosting,
                                                                                                    bool]:
    """Pay (part of) a bill from the card: principal and bonus drawn as the programme says."""
    amount = check_currency(ctx, data["amount"], "amount")
    dedupe = f"payment:{key}"
    wallet, done = _claim(session, ctx, member, dedupe, "its card cannot be used")
    if done is not None:
        return done, False
    principal, bonus = redemption.wallet_split(amount, wallet.principal_minor, wallet.bonus_minor,
                                               ctx.programme.wallet_spend_order)
    return _post(session, wallet, ctx, "payment", -principal, -bonus, dedupe, data["branch"],
                 bill_id=data["bill_id"]), True


def get_posting(session: Session, posting_id: Any) -> WalletPosting:
    try:
        number = int(str(posting_id))
    except ValueError:
        raise NotFound(f"No stored-value payment {posting_id}.") from None
    posting = session.get(WalletPosting, number)
    if posting is None:
        raise NotFound(f"No stored-value payment {posting_id}.")
    return posting


def refund(session: Session, ctx: Context, payment_id: Any, data: dict[str, Any], key: str,
           member_id: Any = None) -> tuple[WalletPosting, bool]:
    """Give (part of) a card payment back to the card, principal and bonus in the payment's proportion."""
    amount = check_currency(ctx, data["amount"], "amount")
    payment = get_posting(session, payment_id)
    if member_id is not None and str(payment.member_id) != str(member_id):
        raise NotFound(f"No stored-value payment {payment_id} of member {member_id}.")
    if payment.kind != "payment":
        raise Invalid("Only a payment can be refunded.", {"payment_id": ["Not a payment."]})
    # a payment of a member since merged into another is refunded to the survivor's card; the alias is
    # held until we commit (a merge moving the card waits), and every refund of the payment then locks
    # the same card, under which the refunds so far are read
    wallet = lock_wallet(session, survivor_of(session, payment.member_id, held=True), ctx)
    dedupe = f"refund:{key}"
    done = existing(session, dedupe)
    if done is not None:
        return done, False
    refunded = session.execute(select(func.coalesce(func.sum(WalletPosting.principal_minor), 0),
                                      func.coalesce(func.sum(WalletPosting.bonus_minor), 0))
                               .where(WalletPosting.refunds_id == payment.id)).one()
    principal, bonus = redemption.refund_split(amount, (-payment.principal_minor, -payment.bonus_minor),
                                               (int(refunded[0]), int(refunded[1])))
    return post(session, wallet, ctx, "refund", principal, bonus, dedupe, data.get("branch") or payment.branch,
                 bill_id=payment.bill_id, refunds_id=payment.id, reason=data["reason"]), True


def history(session: Session, member_id: uuid.UUID, limit: int, cursor: str | None) -> tuple[list[WalletPosting],
                                                                                              str | None]:
    query = select(WalletPosting).where(WalletPosting.member_id == member_id)
    return keyset_page(session, query, WalletPosting.created_at, WalletPosting.id, limit, cursor, descending=True)


def summary(member_id: uuid.UUID, wallet: WalletAccount | None, currency: str) -> dict[str, Any]:
    """What the card holds (``WalletSchema``): nothing yet for a member who never topped up."""
    return {"member_id": member_id, "principal_minor": wallet.principal_minor if wallet else 0,
            "bonus_minor": wallet.bonus_minor if wallet else 0,
            "largest_top_up_minor": wallet.largest_top_up_minor if wallet else 0, "currency": currency}


def topped_up_event(posting: WalletPosting) -> dict[str, Any]:
    return {"member_id": posting.member_id, "topup_id": str(posting.id), "amount_minor": posting.principal_minor,
            "bonus_minor": posting.bonus_minor, "currency": posting.currency, "branch": posting.branch}


# Many wallets created if needed and locked in one statement, in member-id order (a uuid sorts as its text does),
# each as it stands once its lock was granted (``lock_wallet``'s upsert, for a batch).
_LOCK_MANY = text(
    "INSERT INTO wallet_accounts (member_id, currency, principal_minor, bonus_minor, largest_top_up_minor, created_at, "
    "updated_at) SELECT member_id, :currency, 0, 0, 0, :now, :now "
    "FROM unnest(CAST(:members AS uuid[])) AS locked(member_id) ORDER BY member_id "
    "ON CONFLICT (member_id) DO UPDATE SET member_id = excluded.member_id "
    "RETURNING member_id, currency, principal_minor, bonus_minor, largest_top_up_minor, created_at, updated_at"
).bindparams(bindparam("now", type_=UtcDateTime())).columns(*WalletAccount.__table__.columns)


def lock_wallets(session: Session, member_ids: list[uuid.UUID], ctx: Context) -> dict[uuid.UUID, WalletAccount]:
    """``lock_wallet`` for many members, in member-id order; on PostgreSQL in one round trip, each wallet a detached
    copy of its locked row, to change with ``post_locked``."""
    members = sorted(set(member_ids), key=str)
    if session.get_bind().dialect.name != "postgresql" or not members:
        return {member: lock_wallet(session, member, ctx) for member in members}
    rows = session.execute(_LOCK_MANY, {"members": [str(member) for member in members], "currency": ctx.currency,
                                        "now": ctx.now})
    return {row.member_id: WalletAccount(**row._asdict()) for row in rows}


# Postings onto wallets locked already, in one statement on PostgreSQL, sent with the commit: the postings (each with
# the balances it leaves, worked out by the caller in their order) and each wallet's balances moved by their sum.
_POST_LOCKED = AtCommit("""
WITH posted AS (
  SELECT * FROM unnest(CAST(:members AS uuid[]), CAST(:principals AS bigint[]), CAST(:bonuses AS bigint[]),
                       CAST(:principals_after AS bigint[]), CAST(:bonuses_after AS bigint[]),
                       CAST(:currencies AS text[]), CAST(:dedupe_keys AS text[]), CAST(:branches AS text[]),
                       CAST(:reasons AS text[]))
    WITH ORDINALITY AS posted(member_id, principal_minor, bonus_minor, principal_after, bonus_after, currency,
                              dedupe_key, branch, reason, position)),
posting AS (
  INSERT INTO wallet_postings (member_id, kind, principal_minor, bonus_minor, principal_after, bonus_after, currency,
                               dedupe_key, branch, operator, reason, created_at)
  SELECT member_id, :kind, principal_minor, bonus_minor, principal_after, bonus_after, currency, dedupe_key, branch,
         :operator, reason, :now FROM posted ORDER BY position)
UPDATE wallet_accounts SET principal_minor = wallet_accounts.principal_minor + moved.principal_minor,
  bonus_minor = wallet_accounts.bonus_minor + moved.bonus_minor, updated_at = :now
FROM (SELECT member_id, sum(principal_minor) AS principal_minor, sum(bonus_minor) AS bonus_minor FROM posted
      GROUP BY member_id) AS moved
WHERE wallet_accounts.member_id = moved.member_id
""", now=UtcDateTime())


def post_locked(session: Session, wallets: dict[uuid.UUID, WalletAccount], ctx: Context, kind: str,
                postings: list[tuple[uuid.UUID, int, int, str, str | None, str | None]]) -> None:
    """``post`` each ``(member, principal, bonus, dedupe key, branch, reason)`` of ``postings`` (in order, no bill)
    to its wallet of ``wallets`` (``lock_wallets``); on PostgreSQL all in one statement written with the commit
    (``kit.commit``: nothing in the transaction may read them back)."""
    if session.get_bind().dialect.name != "postgresql":
        for member, principal, bonus, dedupe_key, branch, reason in postings:
            post(session, wallets[member], ctx, kind, principal, bonus, dedupe_key, branch, reason=reason)
        return
    if not postings:
        return
    columns: dict[str, list[Any]] = {name: [] for name in (
        "members", "principals", "bonuses", "principals_after", "bonuses_after", "currencies", "dedupe_keys", "branches",
        "reasons")}
    for member, principal, bonus, dedupe_key, branch, reason in postings:
        wallet = wallets[member]
        wallet.principal_minor += principal
        wallet.bonus_minor += bonus
        for name, value in (("members", str(member)), ("principals", principal), ("bonuses", bonus),
                            ("principals_after", wallet.principal_minor), ("bonuses_after", wallet.bonus_minor),
                            ("currencies", wallet.currency), ("dedupe_keys", dedupe_key), ("branches", branch), ("reasons", reason)):
            columns[name].append(value)
    at_commit(session, _POST_LOCKED, {**columns, "kind": kind, "operator": ctx.operator[:160], "now": ctx.now})
