"""The points service's tables: member copies, the points ledger, rewards, stored value and coupons.

Ledgers are append-only (``points_postings``, ``points_lot_moves``, ``wallet_postings``): a mistake is
corrected by a new posting, never by editing one. Balances live on the account rows and change in the
same transaction as the posting, under the account's row lock. Check constraints keep what must never
be negative from ever being written negative, whatever the code above them does.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from services.kit.models import BigId, UtcDateTime, model_base

OPEN = text("remaining <> 0")


Base = model_base()


class MemberCopy(Base):
    """What points knows of a member, kept from the members service's events (or one RPC on a miss).

    Each attribute remembers when it was true (``*_as_of``), so an older event arriving late never
    overwrites a newer fact.
    """

    __tablename__ = "points_members"

    member_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    home_branch: Mapped[str | None] = mapped_column(String(16))
    referrer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    tier: Mapped[str] = mapped_column(String(24), default="standard")
    tier_as_of: Mapped[datetime | None] = mapped_column(UtcDateTime)
    segment: Mapped[str | None] = mapped_column(String(4))
    segment_as_of: Mapped[datetime | None] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(16), default="active")
    status_as_of: Mapped[datetime | None] = mapped_column(UtcDateTime)
    enrolled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # set while this member is merged into another: what names this id applies to that member
    merged_into_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)


class PointsAccount(Base):
    __tablename__ = "points_accounts"

    member_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    balance: Mapped[int] = mapped_column(BigInteger, default=0)  # negative only as debt from a reversal
    earned_total: Mapped[int] = mapped_column(BigInteger, default=0)
    # points locked in the refund window (``points_holds``): shown, never spendable, not in ``balance``
    pending: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    # No index holds ``updated_at`` (nor any column a posting changes), so that the balance's update is a HOT
    # update, in place on its page (pts0013: the table's fillfactor leaves the room); the lots export finds the
    # accounts that changed through their postings (``ledger.last_postings``).
    __table_args__ = (
        CheckConstraint("pending >= 0", name="pending_not_negative"),
    )


LEDGER_LINKS = """Not a foreign key on PostgreSQL (pts0014): the ledger writes this link only in the statement or
transaction that wrote or locked the row it names, and nothing is deleted from the ledger; the nightly reconciliation
checks it (``reconciliation.check_links``)."""


def _ledger_link(column: str, parent: str) -> ForeignKeyConstraint:
    """A ``LEDGER_LINKS`` foreign key, declared as pts0014 leaves it: on SQLite only (``ddl_if``)."""
    return ForeignKeyConstraint([column], [parent]).ddl_if(dialect="sqlite")


class PointsPosting(Base):
    """One entry of a member's points ledger; ``points`` is signed (earn +, redeem/reverse/expire -)."""

    __tablename__ = "points_postings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    member_id: Mapped[uuid.UUID] = mapped_column(Uuid)  # -> points_accounts (LEDGER_LINKS)
    # earn, redeem, return, reverse, expire, deduct; transfer_out / transfer_in: a merge, its reversal or a
    # family transfer
    kind: Mapped[str] = mapped_column(String(16))
    rule: Mapped[str | None] = mapped_column(String(16))  # for earn: spend, visit, referral, ...
    points: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    source: Mapped[str] = mapped_column(String(24))  # visit, enrolment, feedback, interaction, reward...
    source_ref: Mapped[str | None] = mapped_column(String(128))
    branch: Mapped[str | None] = mapped_column(String(16))
    operator: Mapped[str] = mapped_column(String(160))
    reason: Mapped[str | None] = mapped_column(Text)
    basis_minor: Mapped[int | None] = mapped_column(BigInteger)  # the spend an award is proportional to
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("points_postings.id"), index=True)
    redemption_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    expires_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_points_postings_history", "member_id", "created_at", "id"),
        Index("ix_points_postings_source", "source", "source_ref"),
        Index("ix_points_postings_export", "created_at", "id"),  # the warehouse's export (kit.exports)
        _ledger_link("member_id", "points_accounts.member_id"),
        CheckConstraint("(kind = 'earn' AND points > 0) OR (kind = 'return' AND points > 0) "
                        "OR (kind IN ('redeem', 'reverse', 'expire', 'deduct') AND points < 0) "
                        "OR (kind IN ('transfer_out', 'transfer_in') AND points <> 0)",
                        name="sign_follows_kind"),
    )


class PointsHold(Base):
    """Points of one visit line locked until ``release_on`` (the refund window): what is still locked
    (``remaining``: less what refunds cancelled, 0 once released) and the ``earn`` posting that released
    them. The release job reads the holds due; a visit's refunds read its holds."""

    __tablename__ = "points_holds"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("points_accounts.member_id"))
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)  # the line's, as its earn would have had
    visit_id: Mapped[str] = mapped_column(String(128), index=True)
    rule: Mapped[str] = mapped_column(String(16))
    points: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    basis_minor: Mapped[int | None] = mapped_column(BigInteger)
    branch: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    expires_on: Mapped[date] = mapped_column(Date)  # the expiry date of the lot the release opens
    release_on: Mapped[date] = mapped_column(Date)  # the local day the points become spendable
    released_posting_id: Mapped[int | None] = mapped_column(ForeignKey("points_postings.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_points_holds_due", "release_on", "id", postgresql_where=text("remaining > 0"),
              sqlite_where=text("remaining > 0")),
        CheckConstraint("remaining >= 0 AND remaining <= points", name="remaining_in_range"),
    )


class PendingPosting(Base):
    """One entry of a member's pending (locked) points ledger, append-only like the points ledger: ``lock``
    (+, a visit line locked), ``cancel`` (-, a refund inside the window), ``release`` (-, made spendable by
    the earn posting ``holds.released_posting_id``). ``points_accounts.pending`` is their sum."""

    __tablename__ = "points_pending_postings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("points_accounts.member_id"))
    hold_id: Mapped[int] = mapped_column(ForeignKey("points_holds.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    points: Mapped[int] = mapped_column(BigInteger)
    pending_after: Mapped[int] = mapped_column(BigInteger)
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    operator: Mapped[str] = mapped_column(String(160))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_points_pending_postings_history", "member_id", "created_at", "id"),
        CheckConstraint("(kind = 'lock' AND points > 0) OR (kind IN ('cancel', 'release') AND points < 0)",
                        name="sign_follows_kind"),
    )


class PointsLot(Base):
    """Points of one earn, kept until spent or expired; the account's debt lot has no expiry."""

    __tablename__ = "points_lots"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    member_id: Mapped[uuid.UUID] = mapped_column(Uuid)  # -> points_accounts (LEDGER_LINKS)
    posting_id: Mapped[int | None] = mapped_column(BigId, unique=True)  # -> points_postings (LEDGER_LINKS)
    kind: Mapped[str] = mapped_column(String(8), default="earn")  # earn or debt
    points: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    expires_on: Mapped[date | None] = mapped_column(Date)
    warned: Mapped[bool] = mapped_column(Boolean, default=False)  # points_expiring sent
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # a lot opened by a merge (or its reversal) for the points of this lot of the other member
    moved_from_id: Mapped[int | None] = mapped_column(ForeignKey("points_lots.id"))

    __table_args__ = (
        # spending and reversing read a member's open lots; the index holds only open ones
        Index("ix_points_lots_open", "member_id", "expires_on", "id", postgresql_where=OPEN, sqlite_where=OPEN),
        # the daily expiry reads only lots with points left, by expiry date then member
        Index("ix_points_lots_expiring", "expires_on", "member_id", "id", postgresql_where=text("remaining > 0"),
              sqlite_where=text("remaining > 0")),
        # a member's debt lot, found by the earn that pays it (without it each earn scanned the table: issue 17)
        Index("ix_points_lots_debt", "member_id", postgresql_where=text("kind = 'debt'"),
              sqlite_where=text("kind = 'debt'")),
        # the daily expiry warning scans lots about to expire that were not announced yet
        Index("ix_points_lots_to_warn", "expires_on", "id",
              postgresql_where=text("remaining > 0 AND NOT warned"), sqlite_where=text("remaining > 0 AND NOT warned")),
        CheckConstraint("(kind = 'earn' AND remaining >= 0 AND remaining <= points) "
                        "OR (kind = 'debt' AND remaining <= 0)", name="remaining_in_range"),
        _ledger_link("member_id", "points_accounts.member_id"),
        _ledger_link("posting_id", "points_postings.id"),
    )


class PointsLotMove(Base):
    """Every change of a lot's remaining points, by the posting that made it: the lots' audit trail."""

    __tablename__ = "points_lot_moves"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    lot_id: Mapped[int] = mapped_column(BigId, index=True)  # -> points_lots (LEDGER_LINKS)
    posting_id: Mapped[int] = mapped_column(BigId, index=True)  # -> points_postings (LEDGER_LINKS)
    points: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        _ledger_link("lot_id", "points_lots.id"),
        _ledger_link("posting_id", "points_postings.id"),
    )


class VisitRefund(Base):
    """A refund of a visit, remembered so that later refunds are judged on the total refunded."""

    __tablename__ = "points_visit_refunds"

    refund_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    visit_id: Mapped[str] = mapped_column(String(128), index=True)
    member_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    refunded_minor: Mapped[int] = mapped_column(BigInteger)
    full: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class VisitOutcome(Base):
    """What points made of one completed visit, written with its earn (or its lack of one) and updated with
    each reversal: the cross-service audit (records) compares it with the bill."""

    __tablename__ = "points_visit_outcomes"

    visit_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    member_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    # earned; nothing_due (the rules award nothing: zero amount, excluded items...); member_not_active
    state: Mapped[str] = mapped_column(String(20))
    earned_points: Mapped[int] = mapped_column(BigInteger)  # what the rules awarded (referrer's share included)
    reversed_points: Mapped[int] = mapped_column(BigInteger, default=0)
    bill_minor: Mapped[int] = mapped_column(BigInteger)  # the qualifying spend the completion carried
    completed_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class VisitOutcomesSince(Base):
    """When points began noting visit outcomes (one row, written by the migration that made the table): a
    visit completed before it that earned nothing has no note, and that is not a sign of a lost event."""

    __tablename__ = "points_visit_outcomes_since"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    since: Mapped[datetime] = mapped_column(UtcDateTime)


class Reward(Base):
    """An item of the rewards catalogue: a product, a gift card, or a coupon template."""

    __tablename__ = "rewards"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))  # product, gift_card, coupon
    points_price: Mapped[int] = mapped_column(BigInteger)
    stock: Mapped[int | None] = mapped_column(Integer)  # None: not limited (coupons)
    tiers: Mapped[str] = mapped_column(String(200), default="")  # comma-separated; empty: every tier
    coupon_category: Mapped[str | None] = mapped_column(String(24))
    coupon_value_minor: Mapped[int | None] = mapped_column(BigInteger)
    coupon_rate_bp: Mapped[int | None] = mapped_column(Integer)
    coupon_valid_days: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        CheckConstraint("stock IS NULL OR stock >= 0", name="stock_not_negative"),
        CheckConstraint("points_price > 0", name="price_positive"),
    )


class Redemption(Base):
    """Points spent on a reward or off a bill; pending until handed over (or the bill completes)."""

    __tablename__ = "redemptions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    member_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    kind: Mapped[str] = mapped_column(String(16))  # reward, cash_deduction
    reward_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("rewards.id"))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    points: Mapped[int] = mapped_column(BigInteger)
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)  # cash deduction: what it took off the bill
    bill_id: Mapped[str | None] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(12))  # pending, fulfilled, cancelled
    branch: Mapped[str | None] = mapped_column(String(16))
    operator: Mapped[str] = mapped_column(String(160))
    posting_id: Mapped[int] = mapped_column(ForeignKey("points_postings.id"))
    return_posting_id: Mapped[int | None] = mapped_column(ForeignKey("points_postings.id"))
    coupon_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_redemptions_member", "member_id", "created_at", "id"),
        Index("ix_redemptions_bill", "bill_id"),
    )


class WalletAccount(Base):
    """A member's stored value: money paid in (principal) and bonus, kept apart, never negative."""

    __tablename__ = "wallet_accounts"

    member_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    currency: Mapped[str] = mapped_column(String(3))
    principal_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    bonus_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    largest_top_up_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        CheckConstraint("principal_minor >= 0 AND bonus_minor >= 0", name="never_negative"),
        Index("ix_wallet_accounts_export", "updated_at", "member_id"),  # the wallets export (kit.exports)
    )


class WalletPosting(Base):
    """One entry of the stored-value ledger; both parts signed (top-up and refund +, payment -)."""

    __tablename__ = "wallet_postings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    member_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("wallet_accounts.member_id"))
    kind: Mapped[str] = mapped_column(String(12))  # top_up, payment, refund, transfer_in, transfer_out, opening
    principal_minor: Mapped[int] = mapped_column(BigInteger)
    bonus_minor: Mapped[int] = mapped_column(BigInteger)
    principal_after: Mapped[int] = mapped_column(BigInteger)
    bonus_after: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    bill_id: Mapped[str | None] = mapped_column(String(128), index=True)
    refunds_id: Mapped[int | None] = mapped_column(ForeignKey("wallet_postings.id"), index=True)
    branch: Mapped[str | None] = mapped_column(String(16))
    operator: Mapped[str] = mapped_column(String(160))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_wallet_postings_history", "member_id", "created_at", "id"),
        Index("ix_wallet_postings_export", "created_at", "id"),  # the warehouse's export (kit.exports)
        CheckConstraint("(kind IN ('top_up', 'refund', 'opening') AND principal_minor >= 0 AND bonus_minor >= 0 "
                        "AND principal_minor + bonus_minor > 0) OR (kind IN ('payment', 'transfer_out') AND principal_minor <= 0 "
                        "AND bonus_minor <= 0 AND principal_minor + bonus_minor < 0) OR (kind = 'transfer_in' "
                        "AND principal_minor >= 0 AND bonus_minor >= 0 AND principal_minor + bonus_minor > 0)",
                        name="sign_follows_kind"),
    )


class Coupon(Base):
    """A coupon: a value or a rate off (a category of) a bill, within a validity window."""

    __tablename__ = "coupons"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    member_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    source: Mapped[str] = mapped_column(String(12))  # redemption, birthday, festival, campaign, manual
    title: Mapped[str] = mapped_column(String(120))
    category: Mapped[str | None] = mapped_column(String(24))
    value_minor: Mapped[int | None] = mapped_column(BigInteger)
    rate_bp: Mapped[int | None] = mapped_column(Integer)
    max_discount_minor: Mapped[int | None] = mapped_column(BigInteger)
    min_spend_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date] = mapped_column(Date)
    state: Mapped[str] = mapped_column(String(10))  # issued, redeemed, expired, void
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    redemption_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    issued_by: Mapped[str] = mapped_column(String(160))
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    redeemed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    redeemed_bill_id: Mapped[str | None] = mapped_column(String(128))
    redeemed_branch: Mapped[str | None] = mapped_column(String(16))
    discount_minor: Mapped[int | None] = mapped_column(BigInteger)
    voided_reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_coupons_member", "member_id", "issued_at", "id"),
        Index("ix_coupons_export", "updated_at", "id"),  # the warehouse's export (kit.exports)
        Index("ix_coupons_to_expire", "valid_until", "id", postgresql_where=text("state = 'issued'"),
              sqlite_where=text("state = 'issued'")),
        CheckConstraint("(value_minor IS NOT NULL AND value_minor > 0 AND rate_bp IS NULL) OR "
                        "(rate_bp IS NOT NULL AND rate_bp > 0 AND rate_bp <= 10000 AND value_minor IS NULL)",
                        name="value_or_rate"),
        CheckConstraint("valid_until >= valid_from", name="window"),
    )


class PointsMerge(Base):
    """A members' merge as points applied it (``member_merged``), by the members service's merge id.

    The row is written before anything moves, so a second ``member_merged`` for the same merge (another
    event id) finds it and moves nothing; ``member_unmerged`` moves back what its moves record.
    """

    __tablename__ = "points_merges"

    merge_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    survivor_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    merged_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    state: Mapped[str] = mapped_column(String(10))  # merged, unmerged
    merged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # None: the reversal arrived first
    unmerged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # stored value the survivor had already spent when the merge was reversed (settled by finance)
    wallet_shortfall_minor: Mapped[int] = mapped_column(BigInteger, default=0)


class PointsMergeMove(Base):
    """One thing a merge moved to the survivor: a lot (with its expiry), a debt, stored value or a coupon."""

    __tablename__ = "points_merge_moves"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    merge_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("points_merges.merge_id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # lot, debt, wallet, coupon
    from_lot_id: Mapped[int | None] = mapped_column(ForeignKey("points_lots.id"))
    to_lot_id: Mapped[int | None] = mapped_column(ForeignKey("points_lots.id"))
    points: Mapped[int] = mapped_column(BigInteger, default=0)
    expires_on: Mapped[date | None] = mapped_column(Date)
    principal_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    bonus_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    coupon_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)


class FamilyTransfer(Base):
    """Points or stored value moved from one member of a family to another: one ``transfer_out`` posting on
    the giver's ledger and one ``transfer_in`` on the receiver's, written together (``dedupe_key``: once per
    idempotency key)."""

    __tablename__ = "points_family_transfers"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    family_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    from_member_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    to_member_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    kind: Mapped[str] = mapped_column(String(12))  # points, wallet
    points: Mapped[int] = mapped_column(BigInteger, default=0)
    principal_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    bonus_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    out_posting_id: Mapped[int] = mapped_column(BigInteger)  # of points_postings or wallet_postings (kind)
    in_posting_id: Mapped[int] = mapped_column(BigInteger)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    branch: Mapped[str | None] = mapped_column(String(16))
    operator: Mapped[str] = mapped_column(String(160))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        CheckConstraint("from_member_id <> to_member_id", name="two_members"),
        CheckConstraint("(kind = 'points' AND points > 0) OR (kind = 'wallet' AND principal_minor >= 0 "
                        "AND bonus_minor >= 0 AND principal_minor + bonus_minor > 0)", name="something_moves"),
    )


class Campaign(Base):
    """A campaign created through the API (those of the programme file are not stored): its current version,
    who created it and, once ended early, who ended it and when. Every version's terms stay in
    ``points_campaign_versions``."""

    __tablename__ = "points_campaigns"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    version: Mapped[int] = mapped_column(Integer)  # the version in force
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(200))  # Identity.actor
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_by: Mapped[str] = mapped_column(String(200))
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # ended early by hand
    ended_by: Mapped[str | None] = mapped_column(String(200))


class CampaignVersion(Base):
    """One version of a stored campaign's terms (never edited: an edit adds the next version)."""

    __tablename__ = "points_campaign_versions"

    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("points_campaigns.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    terms: Mapped[str] = mapped_column(Text)  # JSON: rules.programme.plain(Campaign), read by parse_campaign
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(200))


class CampaignsStamp(Base):
    """One row that every campaign change rewrites (a new random ``stamp``): the earn path reads it to know
    whether its cached campaigns are current, and changes queue on its row lock, one at a time."""

    __tablename__ = "points_campaigns_stamp"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    stamp: Mapped[str] = mapped_column(String(32))
    changes: Mapped[int] = mapped_column(BigInteger)  # how many changes so far (for people; the stamp decides)
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class EarningRulesVersion(Base):
    """One version of the earning rules changed through the API (``earning_rules.py``): the fields it sets over
    the programme file's, who stored it and when. Never edited: a change adds the next version; the highest is in
    force (none: the file's rules alone)."""

    __tablename__ = "points_earning_rules"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    terms: Mapped[str] = mapped_column(Text)  # JSON: the earning fields set, as rules.programme.parse_programme reads
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(200))  # Identity.actor
