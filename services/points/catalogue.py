"""The rewards catalogue and redemptions: spending points on a reward or off a bill, and undoing it.

Lock order, everywhere: the member's points account, then the reward row. Stock is taken under the
reward's row lock and a check constraint refuses a negative stock, so a reward is never oversold.
A redemption is ``pending`` until the reward is handed over (or, for a cash deduction, until the
bill's visit completes); a pending redemption can be cancelled and its points go back to the lots
they came from.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import Uuid, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.kit.commit import AtCommit, at_commit
from services.kit.db import first_found, parse_uuid
from services.kit.errors import Conflict, Invalid, NotFound
from services.kit.models import UtcDateTime
from services.kit.paging import keyset_page
from services.points import coupons, ledger
from services.points.awards import Context
from services.points.ledger import Entry
from services.points.models import Coupon, MemberCopy, PointsPosting, Redemption, Reward
from services.points.rules import redemption


def get_reward(session: Session, reward_id: Any, lock: bool = False) -> Reward:
    return first_found(session, select(Reward).where(Reward.id == parse_uuid(reward_id, "reward")),
                       f"No reward {reward_id}.", lock)


def create_reward(session: Session, data: dict[str, Any], now: Any) -> Reward:
    coupon = data.get("coupon") or {}
    if data["kind"] == "coupon" and not coupon:
        raise Invalid("A coupon reward needs the coupon it gives.", {"coupon": ["Required for kind coupon."]})
    if data["kind"] != "coupon" and coupon:
        raise Invalid("Only a coupon reward gives a coupon.", {"coupon": ["Only for kind coupon."]})
    if data["kind"] != "coupon" and data.get("stock") is None:
        raise Invalid("A product or gift card needs its stock.", {"stock": ["Required for products and gift cards."]})
    reward = Reward(
        id=uuid.uuid4(), code=data["code"], name=data["name"], description=data.get("description"),
        kind=data["kind"], points_price=data["points_price"], stock=data.get("stock"),
        tiers=",".join(data.get("tiers") or ()), coupon_category=coupon.get("category"),
        coupon_value_minor=coupon["value"]["amount"] if coupon.get("value") else None,
        coupon_rate_bp=coupon.get("rate_bp"), coupon_valid_days=coupon.get("valid_days"),
        active=data.get("active", True), created_at=now, updated_at=now)
    try:
        with session.begin_nested():
            session.add(reward)
            session.flush()
    except IntegrityError:
        raise Conflict(f"A reward with code {data['code']} already exists.", {"code": ["Already used."]}) from None
    return reward


def change_reward(session: Session, reward_id: Any, changes: dict[str, Any], now: Any) -> Reward:
    reward = get_reward(session, reward_id, lock=True)
    for field in ("name", "description", "points_price", "active"):
        if field in changes:
            setattr(reward, field, changes[field])
    if "tiers" in changes:
        reward.tiers = ",".join(changes["tiers"] or ())
    if "add_stock" in changes:
        if reward.stock is None:
            raise Invalid("This reward's stock is not limited.", {"add_stock": ["Stock is not counted."]})
        if reward.stock + changes["add_stock"] < 0:
            raise Conflict(f"Only {reward.stock} left in stock; cannot take {-changes['add_stock']} away.")
        reward.stock += changes["add_stock"]
    reward.updated_at = now
    return reward


def list_rewards(session: Session, tier: str | None, include_inactive: bool, limit: int,
                 cursor: str | None) -> tuple[list[Reward], str | None]:
    """The catalogue by code; with ``tier``, only what that tier may redeem (tiers kept as "a,b,c")."""
    query = select(Reward)
    if not include_inactive:
        query = query.where(Reward.active.is_(True))
    if tier is not None:
        query = query.where(or_(Reward.tiers == "", ("," + Reward.tiers + ",").contains(f",{tier},")))
    return keyset_page(session, query, Reward.code, Reward.id, limit, cursor)


def available_to(reward: Reward, tier: str) -> bool:
    allowed = [t for t in reward.tiers.split(",") if t]
    return not allowed or tier in allowed


def redeem_reward(session: Session, ctx: Context, member: MemberCopy, data: dict[str, Any],
                  key: str) -> tuple[Redemption, list[PointsPosting], Coupon | None]:
    """Spend points on a reward: the member's account first, then the reward's stock, both locked (the reward
    is read once, locked; a refusal rolls the account's lock back with the rest)."""
    account = ledger.lock_account(session, member.member_id, ctx.now)  # the account first, then the reward
    reward = get_reward(session, data["reward_id"], lock=True)
    if not reward.active:
        raise Conflict(f"The reward {reward.name} is not offered any more.")
    if not available_to(reward, member.tier):
        raise Conflict(f"The reward {reward.name} is not available to {member.tier} members.")
    quantity = data["quantity"]
    if reward.stock is not None and reward.stock < quantity:
        raise Conflict(f"The reward {reward.name} is out of stock ({reward.stock} left).",
                       details={"stock": reward.stock})
    record = Redemption(id=uuid.uuid4(), member_id=member.member_id, kind="reward", reward_id=reward.id,
                        quantity=quantity, points=reward.points_price * quantity, state="pending",
                        branch=data["branch"], operator=ctx.operator[:160], reason=data.get("note"),
                        created_at=ctx.now, updated_at=ctx.now)
    entry = Entry("reward", reward.code, ctx.operator, data["branch"], f"{quantity} x {reward.name}",
                  dedupe_key=f"redeem:{key}", redemption_id=record.id)
    # the lots' takes, the stock and the redemption go with the commit: nothing after this reads them again
    postings = ledger.spend(session, member.member_id, record.points, "redeem", entry, ctx.today, ctx.now,
                            locked=account, later=True)
    record.posting_id = postings[-1].id
    at_commit(session, _TAKE_STOCK, {"quantity": quantity, "now": ctx.now, "reward": reward.id})
    coupon = None
    if reward.kind == "coupon":
        coupon, _new = coupons.issue(session, ctx, member, coupon_terms_of(reward, ctx), f"redemption:{record.id}",
                                     redemption_id=record.id)
        record.coupon_id, record.state = coupon.id, "fulfilled"
    at_commit(session, _ADD_REDEMPTION, {column: getattr(record, column) for column in _REDEMPTION_COLUMNS})
    return record, postings, coupon


# a reward's stock taken (a stock not counted stays NULL) and a redemption added, with the commit
_TAKE_STOCK = AtCommit("UPDATE rewards SET stock = stock - :quantity, updated_at = :now WHERE id = :reward",
                       now=UtcDateTime(), reward=Uuid())
_REDEMPTION_COLUMNS = tuple(Redemption.__table__.columns.keys())
_ADD_REDEMPTION = AtCommit(f"INSERT INTO redemptions ({', '.join(_REDEMPTION_COLUMNS)}) "
                           f"VALUES ({', '.join(':' + column for column in _REDEMPTION_COLUMNS)})",
                           id=Uuid(), member_id=Uuid(), reward_id=Uuid(), coupon_id=Uuid(), created_at=UtcDateTime(),
                           updated_at=UtcDateTime())


def buy_tier(session: Session, ctx: Context, member: MemberCopy, data: dict[str, Any],
             key: str) -> tuple[Redemption, list[PointsPosting]]:
    """Spend the programme's price of a tier (``tier_upgrade_prices``); the redemption is final at once.
    The caller has the members service place the tier before this transaction commits (service.buy_tier)."""
    tier = data["tier"]
    price = ctx.programme.tier_upgrade_prices.get(tier)
    if price is None:
        offered = ", ".join(sorted(ctx.programme.tier_upgrade_prices)) or "none"
        raise Invalid(f"The {tier} tier cannot be bought with points (tiers offered: {offered}).",
                      {"tier": [f"Not offered for points (offered: {offered})."]})
    account = ledger.lock_account(session, member.member_id, ctx.now)
    record = Redemption(id=uuid.uuid4(), member_id=member.member_id, kind="tier_upgrade", reward_id=None, quantity=1,
                        points=price, state="fulfilled", branch=data["branch"], operator=ctx.operator[:160],
                        reason=f"tier {tier}", created_at=ctx.now, updated_at=ctx.now)
    entry = Entry("tier_upgrade", tier, ctx.operator, data["branch"], f"{tier} tier bought with points",
                  dedupe_key=f"tier:{key}", redemption_id=record.id)
    postings = ledger.spend(session, member.member_id, price, "redeem", entry, ctx.today, ctx.now, locked=account)
    record.posting_id = postings[-1].id
    session.add(record)
    session.flush()
    return record, postings


def coupon_terms_of(reward: Reward, ctx: Context) -> dict[str, Any]:
    days = reward.coupon_valid_days or 90
    return {"source": "redemption", "title": reward.name, "category": reward.coupon_category,
            "value_minor": reward.coupon_value_minor, "rate_bp": reward.coupon_rate_bp,
            "valid_from": ctx.today, "valid_until": ctx.today + timedelta(days=days - 1)}


def deduct_cash(session: Session, ctx: Context, member: MemberCopy, data: dict[str, Any],
                key: str) -> tuple[Redemption, list[PointsPosting]]:
    """Take points off a bill (at most the programme's share of it); one deduction per bill."""
    account = ledger.lock_account(session, member.member_id, ctx.now)
    bill_id, points = data["bill_id"], data["points"]
    existing = session.scalars(select(Redemption).where(
        Redemption.kind == "cash_deduction", Redemption.bill_id == bill_id, Redemption.state != "cancelled")).first()
    if existing is not None:
        if existing.member_id == member.member_id and existing.points == points:
            return existing, []  # the same deduction asked for again: it stands
        raise Conflict(f"Bill {bill_id} already has a points deduction ({existing.points} points); "
                       "cancel it first to change it.", details={"redemption_id": str(existing.id)})
    value = redemption.check_cash_deduction(ctx.programme, data["bill"]["amount"], points)
    record = Redemption(id=uuid.uuid4(), member_id=member.member_id, kind="cash_deduction", reward_id=None,
                        quantity=1, points=points, amount_minor=value, bill_id=bill_id, state="pending",
                        branch=data["branch"], operator=ctx.operator[:160], created_at=ctx.now, updated_at=ctx.now)
    entry = Entry("cash_deduction", bill_id, ctx.operator, data["branch"],
                  f"{value} minor units off bill {bill_id}", dedupe_key=f"cash:{key}", redemption_id=record.id)
    postings = ledger.spend(session, member.member_id, points, "redeem", entry, ctx.today, ctx.now, locked=account)
    record.posting_id = postings[-1].id
    session.add(record)
    session.flush()
    return record, postings


def get_redemption(session: Session, redemption_id: Any, lock: bool = False, member_id: Any = None) -> Redemption:
    """A redemption (of ``member_id``, when the caller names the member it expects)."""
    query = select(Redemption).where(Redemption.id == parse_uuid(redemption_id, "redemption"))
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    record = session.scalars(query).first()
    if record is None or (member_id is not None and str(record.member_id) != str(member_id)):
        raise NotFound(f"No redemption {redemption_id}" + (f" of member {member_id}." if member_id else "."))
    return record


def cancel(session: Session, ctx: Context, redemption_id: Any, reason: str) -> tuple[Redemption, list[PointsPosting]]:
    """Cancel a pending redemption: its points go back to their lots and a reward goes back to stock.
    A coupon bought with points can be cancelled while the coupon is unused (the coupon is voided)."""
    record = get_redemption(session, redemption_id)
    ledger.lock_account(session, record.member_id, ctx.now)
    record = get_redemption(session, record.id, lock=True)
    if record.state == "cancelled":
        return record, []
    coupon = session.get(Coupon, record.coupon_id) if record.coupon_id else None
    if record.state != "pending" and not (coupon is not None and coupon.state == "issued"):
        raise Conflict(f"This redemption is {record.state}; only a pending one can be cancelled.")
    if coupon is not None:
        coupons.void(session, ctx, coupon.code, f"redemption cancelled: {reason}")
    spent = session.get(PointsPosting, record.posting_id)
    entry = Entry("redemption", str(record.id), ctx.operator, record.branch, f"cancelled: {reason}",
                  dedupe_key=f"return:{record.id}", redemption_id=record.id)
    postings = ledger.give_back(session, record.member_id, spent, entry, ctx.today, ctx.now)
    if record.reward_id is not None:
        reward = get_reward(session, record.reward_id, lock=True)
        if reward.stock is not None:
            reward.stock += record.quantity
        reward.updated_at = ctx.now
    record.state, record.return_posting_id, record.reason, record.updated_at = (
        "cancelled", postings[0].id, reason, ctx.now)
    return record, postings


def fulfil(session: Session, ctx: Context, redemption_id: Any) -> Redemption:
    record = get_redemption(session, redemption_id, lock=True)
    if record.state == "fulfilled":
        return record
    if record.state != "pending":
        raise Conflict(f"This redemption is {record.state}; it cannot be handed over.")
    record.state, record.updated_at = "fulfilled", ctx.now
    return record


_SETTLE = AtCommit("UPDATE redemptions SET state = 'fulfilled', updated_at = :now "
                   "WHERE kind = 'cash_deduction' AND bill_id = :bill AND state = 'pending'",
                   prepare=True, now=UtcDateTime())
"""Sent with the commit of every paid visit's earn (a deduction or none): prepared once per connection, the server
parsed and planned it anew a flow (0.86 of points' 1.28 statements parsed anew a flow, ``tests/perf/RESULTS.md``)."""


def settle_bill(session: Session, ctx: Context, bill_id: str | None) -> None:
    """A bill's visit completed: its pending points deductions are final. Written with the commit (nothing reads
    them back; last, after the accounts, as the lock order wants; a deduction cancelled meanwhile stays so: the
    UPDATE looks at the state again once it has the row)."""
    if bill_id:
        at_commit(session, _SETTLE, {"now": ctx.now, "bill": bill_id})


def history(session: Session, member_id: uuid.UUID, limit: int, cursor: str | None) -> tuple[list[Redemption],
                                                                                              str | None]:
    query = select(Redemption).where(Redemption.member_id == member_id)
    return keyset_page(session, query, Redemption.created_at, Redemption.id, limit, cursor, descending=True)
