"""Coupons: issued (by redemption, birthday, festival, campaign or by hand), checked against a bill,
redeemed once, expired or voided. States: issued -> redeemed | expired | void, never back.

A coupon's code is what the member shows at the desk; it is random (not guessable from another
coupon) and only its owner's bill can use it. Redeeming locks the coupon row, so two desks cannot
both take it.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.kit.db import dialect_insert, first_found
from services.kit.errors import Conflict, Invalid
from services.kit.paging import keyset_page
from services.kit.telemetry import counter
from services.points import roster
from services.points.awards import Context
from services.points.models import Coupon, MemberCopy
from services.points.rules.redemption import CouponTerms, coupon_discount

COUPONS = counter("careloop_coupons_total", "Coupons by what happened to them", ("event", "source"))
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read aloud at a desk
CODE_LENGTH = 10
CODE_ATTEMPTS = 5
DEFAULT_VALID_DAYS = 90
USER_FIRST = roster.first_read(lambda arguments: arguments["use"]["member_id"])
"""The member of a coupon's use (``redeem_coupon``'s ``use.member_id``), held and read with the idempotency claim."""


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(raw: str) -> str:
    return raw.replace("-", "").replace(" ", "").upper()


def window(terms: dict[str, Any], today: date) -> tuple[date, date]:
    """(valid_from, valid_until) of a coupon being issued today; ``Invalid`` for a window already over."""
    valid_from = terms.get("valid_from") or today
    valid_until = terms.get("valid_until")
    if valid_until is None:
        valid_until = valid_from + timedelta(days=(terms.get("valid_days") or DEFAULT_VALID_DAYS) - 1)
    if valid_until < valid_from:
        raise Invalid("The coupon would end before it starts.", {"valid_until": ["Before valid_from."]})
    if valid_until < today:
        raise Invalid("The coupon would already have expired.", {"valid_until": ["In the past."]})
    return valid_from, valid_until


def issue(session: Session, ctx: Context, member: MemberCopy, terms: dict[str, Any], dedupe_key: str,
          redemption_id: uuid.UUID | None = None) -> tuple[Coupon, bool]:
    """Issue a coupon to ``member`` once per ``dedupe_key``: (the coupon, whether it is new)."""
    if member.status != "active":
        existing = _issued_under(session, dedupe_key)
        if existing is not None:
            return existing, False
        raise Conflict(f"This membership is {member.status}: it cannot receive coupons.")
    valid_from, valid_until = window(terms, ctx.today)
    values = dict(
        member_id=member.member_id, source=terms["source"], title=terms["title"],
        category=terms.get("category"), value_minor=terms.get("value_minor"), rate_bp=terms.get("rate_bp"),
        max_discount_minor=terms.get("max_discount_minor"), min_spend_minor=terms.get("min_spend_minor") or 0,
        currency=ctx.currency, valid_from=valid_from, valid_until=valid_until, state="issued",
        dedupe_key=dedupe_key, redemption_id=redemption_id, issued_by=ctx.operator[:160], issued_at=ctx.now,
        updated_at=ctx.now)
    for _attempt in range(CODE_ATTEMPTS):
        coupon = Coupon(id=uuid.uuid4(), code=new_code(), **values)
        # one statement: a clash of the dedupe key (a twin request) or of the code inserts nothing (was a read, then
        # the insert in a savepoint: four round trips)
        insert = dialect_insert(session, Coupon).values(id=coupon.id, code=coupon.code, **values)
        try:
            inserted = session.execute(insert.on_conflict_do_nothing().returning(Coupon.id)).first()
        except IntegrityError:  # a check refused the terms: the transaction is spoilt, as a refusal leaves it
            raise Conflict("Could not draw a free coupon code; please try again.") from None
        if inserted is not None:
            return coupon, True
        again = _issued_under(session, dedupe_key)
        if again is not None:  # issued before, or by a twin request a moment ago
            return again, False
    raise Conflict("Could not draw a free coupon code; please try again.")


def _issued_under(session: Session, dedupe_key: str) -> Coupon | None:
    return session.scalars(select(Coupon).where(Coupon.dedupe_key == dedupe_key)).first()


def get(session: Session, code: str, lock: bool = False) -> Coupon:
    return first_found(session, select(Coupon).where(Coupon.code == normalise_code(code)), f"No coupon {code}.", lock)


def terms_of(coupon: Coupon) -> CouponTerms:
    return CouponTerms(value_minor=coupon.value_minor, rate_bp=coupon.rate_bp,
                       max_discount_minor=coupon.max_discount_minor, min_spend_minor=coupon.min_spend_minor,
                       category=coupon.category)


def usable(coupon: Coupon, member_id: uuid.UUID, today: date) -> None:
    """``Conflict`` saying why this coupon cannot be used on this member's bill today."""
    if coupon.member_id != member_id:
        raise Conflict("This coupon belongs to another member.")
    if coupon.state != "issued":
        raise Conflict(f"This coupon was already {coupon.state}.")
    if today < coupon.valid_from:
        raise Conflict(f"This coupon is valid from {coupon.valid_from.isoformat()}.")
    if today > coupon.valid_until:
        raise Conflict(f"This coupon expired on {coupon.valid_until.isoformat()}.")


def category_amounts(use: dict[str, Any]) -> dict[str, int] | None:
    if not use.get("items"):
        return None
    amounts: dict[str, int] = {}
    for item in use["items"]:
        amounts[item["category"]] = amounts.get(item["category"], 0) + item["amount"]["amount"]
    return amounts


def check(session: Session, ctx: Context, code: str, member: MemberCopy, use: dict[str, Any]) -> tuple[Coupon, int]:
    """The coupon and what it would take off this bill, without using it."""
    coupon = get(session, code)
    usable(coupon, member.member_id, ctx.today)
    if member.status != "active":
        raise Conflict(f"This membership is {member.status}: its coupons cannot be used.")
    return coupon, coupon_discount(terms_of(coupon), use["bill"]["amount"], category_amounts(use))


def redeem(session: Session, ctx: Context, code: str, member: MemberCopy, use: dict[str, Any]) -> Coupon:
    """Use a coupon on a bill, once. Asking again for the same bill gives the same answer."""
    coupon = get(session, code, lock=True)
    if coupon.state == "redeemed" and coupon.redeemed_bill_id == use["bill_id"] and coupon.member_id == member.member_id:
        return coupon
    usable(coupon, member.member_id, ctx.today)
    if member.status != "active":
        raise Conflict(f"This membership is {member.status}: its coupons cannot be used.")
    discount = coupon_discount(terms_of(coupon), use["bill"]["amount"], category_amounts(use))
    coupon.state, coupon.redeemed_at, coupon.redeemed_bill_id = "redeemed", ctx.now, use["bill_id"]
    coupon.redeemed_branch, coupon.discount_minor, coupon.updated_at = use["branch"], discount, ctx.now
    return coupon


def void(session: Session, ctx: Context, code: str, reason: str) -> Coupon:
    coupon = get(session, code, lock=True)
    if coupon.state == "void":
        return coupon
    if coupon.state != "issued":
        raise Conflict(f"This coupon was already {coupon.state}; only an unused coupon can be voided.")
    coupon.state, coupon.voided_reason, coupon.updated_at = "void", reason, ctx.now
    return coupon


def of_member(session: Session, member_id: uuid.UUID, state: str | None, limit: int,
              cursor: str | None) -> tuple[list[Coupon], str | None]:
    query = select(Coupon).where(Coupon.member_id == member_id)
    if state:
        query = query.where(Coupon.state == state)
    return keyset_page(session, query, Coupon.issued_at, Coupon.id, limit, cursor, descending=True)


def issued_event(coupon: Coupon) -> dict[str, Any]:
    return {"member_id": coupon.member_id, "coupon_id": coupon.id, "source": coupon.source,
            "category": coupon.category, "value_minor": coupon.value_minor, "rate_bp": coupon.rate_bp,
            "currency": coupon.currency, "title": coupon.title, "valid_from": coupon.valid_from,
            "valid_until": coupon.valid_until}
