"""Posting what the rules award: a visit's points, a refund's reversal, referrals, reviews, activities
and online interactions, and manual adjustments. Rules come from ``earning.py``; postings from
``ledger.py``. Each award has a dedupe key of its own (the visit id, the refund id, the review id...),
checked under the account lock, so a repeated event or command never posts twice.

A visit's earn and its refunds (and cancellation) check each other's rows: the earn applies refunds that
came first, a refund reverses what was earned. Handled at the same moment by two workers or replicas, each
would find the other's rows not yet committed and both would do nothing. So everything about one visit
runs under ``hold_visit`` (a ``kit.locks`` lock on the visit id), taken before anything else is read:
``earn_visit``, ``record_refund`` and ``apply_refunds`` must be called under it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, Boolean, String, Uuid, bindparam, cast, column, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from services.kit.clock import local_date
from services.kit.commit import AtCommit, at_commit
from services.kit.db import prepared
from services.kit.errors import Conflict, Invalid
from services.kit.locks import lock_name, serialise
from services.kit.models import UtcDateTime
from services.kit.telemetry import counter
from services.points import campaigns, holds, ledger, roster
from services.points.ledger import Entry
from services.points.models import MemberCopy, PointsPosting, VisitOutcome, VisitRefund
from services.points.rules import earning
from services.points.rules import lots as lot_rules
from services.points.rules.programme import Programme


@dataclass(frozen=True)
class Context:
    """What every award needs besides the database: the rules, the group's zone, the time, who acts."""

    programme: Programme
    zone: ZoneInfo
    currency: str
    now: datetime
    operator: str

    @property
    def today(self) -> date:
        return local_date(self.now, self.zone)

    def expires_on(self, earned_on: date) -> date:
        return lot_rules.expiry_date(earned_on, self.programme.lot_expiry_years_after)


def visit_facts(event: dict[str, Any], zone: ZoneInfo) -> earning.Visit:
    """A ``visit_completed`` (records' contract, in domain values) in the engine's terms."""
    return earning.Visit(
        branch=event["branch"], kind=event["kind"], day=local_date(event["completed_at"], zone),
        items=tuple(earning.Item(i["category"], i["amount_minor"], i["code"] or "") for i in event["items"]),
        payments=tuple(earning.Payment(p["method"], p["amount_minor"]) for p in event["payments"]),
        qualifying_minor=event["qualifying_minor"], first_paid_visit=event["first_paid_visit"],
    )


def bill_facts(data: dict[str, Any], ctx: Context) -> earning.Visit:
    """A bill as the ``quote`` RPC takes it (money as ``{"amount", "currency"}``) in the engine's terms."""
    def minor(money: dict[str, Any], field: str) -> int:
        if money["currency"] != ctx.currency:
            raise Invalid(f"Amounts must be in {ctx.currency}.", {field: [f"Must be {ctx.currency}."]})
        return money["amount"]

    return earning.Visit(
        branch=data["branch"], kind=data["kind"], day=local_date(data["completed_at"] or ctx.now, ctx.zone),
        items=tuple(earning.Item(i["category"], minor(i["amount"], "items"), i["code"]) for i in data["items"]),
        payments=tuple(earning.Payment(p["method"], minor(p["amount"], "payments")) for p in data["payments"]),
        first_paid_visit=data["first_paid_visit"])


def member_facts(copy: MemberCopy) -> earning.MemberFacts:
    return earning.MemberFacts(tier=copy.tier, segment=copy.segment, has_referrer=copy.referrer_id is not None)


SKIPPED = counter("careloop_points_earnings_skipped_total", "Earning events for memberships that may not earn",
                  ("reason",))
VISIT_LOCK = holds.VISIT_LOCK


def hold_visit(session: Session, visit_id: Any) -> None:
    """One transaction at a time about this visit (its earn, refunds, cancellation), until it ends. Taken
    first, before the member is resolved and before any row lock (the lock order of ``kit.locks``)."""
    serialise(session, VISIT_LOCK, str(visit_id))


@dataclass(frozen=True)
class VisitHold:
    """What a visit's earn reads first, under the visit's lock: the campaigns' stamp (``campaigns.in_force``), the
    member's copy held (``roster.resolve``'s ``read``; None: no copy yet) and whether refunds of the visit came
    first (then ``apply_refunds``: none can come meanwhile, they take the same lock)."""

    stamp: Any
    copy: Any
    refunded: bool
    earned: bool | None = None  # whether the visit earned before (None: not read, SQLite): ``earn_visit``


# The member's copy (or nulls) and the campaigns' stamp, in one row: what every earn reads first
_COPY_AND_STAMP_SQL = (f"SELECT copy.*, ({campaigns.STAMP_SQL}) AS campaigns_stamp{{more}} "
                       f"FROM (SELECT 1) AS one LEFT JOIN ({roster.COPY_SQL}) AS copy ON true")
_COPY_AND_STAMP_COLUMNS = (*roster.COPY_COLUMNS, column("campaigns_stamp", String()))

# PostgreSQL, one round trip in the lock order (``kit.locks``: the visit, then the member shared): the two locks,
# then the reads with a snapshot taken once they were granted; each of the three prepared once per connection
# (``kit.db.prepared``: every paid visit's first query, parsed and planned anew each time before)
_HOLD_FOR_EARN = prepared(text(
    "SELECT pg_advisory_xact_lock(hashtextextended(:visit_lock, 0)); "
    "SELECT pg_advisory_xact_lock_shared(hashtextextended(:member_lock, 0)); "
    + _COPY_AND_STAMP_SQL.format(more=", EXISTS (SELECT 1 FROM points_visit_refunds WHERE visit_id = :visit) AS refunded"
                                      ", EXISTS (SELECT 1 FROM points_postings WHERE dedupe_key = :first) "
                                      "OR EXISTS (SELECT 1 FROM points_holds WHERE dedupe_key = :first) AS earned")
).bindparams(bindparam("member", type_=Uuid())).columns(*_COPY_AND_STAMP_COLUMNS, column("refunded", Boolean()),
                                                        column("earned", Boolean())))

EARN_FIRST = replace(roster.first_read(lambda arguments: arguments["member_id"], _COPY_AND_STAMP_SQL.format(more=""),
                                       _COPY_AND_STAMP_COLUMNS), prepare=True)
"""The ``earn`` command's first reads, sent with its idempotency claim (``@idempotent(first=EARN_FIRST)``): the
member held and its copy, and the campaigns' stamp (what it earns follows the rules stored through the API); prepared
once per connection (``kit.db.prepared``: ~0.2 ms of PostgreSQL's CPU an earn)."""


def read_with_claim(session: Session, member_id: Any) -> tuple[Any, Any]:
    """(the member's copy, the campaigns' stamp) as ``EARN_FIRST`` read them with the claim, for ``roster.resolve``'s
    ``read`` and ``campaigns.in_force``'s ``stamp``; (``roster.UNREAD``, ``campaigns.UNREAD``) when not sent."""
    copy, row = roster.prefetched_copy(session, EARN_FIRST, member_id)
    if copy is roster.UNREAD:
        return roster.UNREAD, campaigns.UNREAD
    return copy, row.campaigns_stamp if row is not None else None


def hold_visit_for_earn(session: Session, visit_id: Any, member_id: Any) -> VisitHold:
    """``hold_visit``, then the member's alias held (``roster.resolve(held=True)``), then the campaigns' stamp, the
    member's copy, whether refunds came first and whether the visit earned before, in one round trip on PostgreSQL:
    what a visit earns is decided under the locks with what was committed once they were granted."""
    visit_id = str(visit_id)
    if session.get_bind().dialect.name != "postgresql":  # nothing to hold on SQLite (the kit's gate)
        return VisitHold(campaigns.UNREAD, roster.UNREAD, True)
    member = roster.parse_id(member_id)
    row = session.execute(_HOLD_FOR_EARN, {"visit_lock": lock_name(VISIT_LOCK, visit_id), "visit": visit_id,
                                           "member_lock": lock_name(roster.ALIAS_LOCK, member), "member": member,
                                           "first": _first_line(visit_id)}).one()
    return VisitHold(row.campaigns_stamp, roster.copy_of(row), row.refunded, row.earned)


def _first_line(visit_id: str) -> str:
    """The dedupe key of a visit's first line (its earn's, or its hold's): there once the visit earned."""
    return f"visit:{visit_id}:0"


def earn_visit(session: Session, ctx: Context, event: dict[str, Any], member: MemberCopy,
               referrer: MemberCopy | None, earned_before: bool | None = None) -> list[ledger.Posting]:
    """Post every line a completed visit earns (the referrer's share to the referrer), once per visit.
    Runs under ``hold_visit``; ``earned_before``: whether the visit earned before, read under it already
    (``hold_visit_for_earn``)."""
    if member.status != "active":
        note_visit(session, event, member, "member_not_active", 0, ctx.now)
        return []
    visit_id = str(event["visit_id"])
    facts = visit_facts(event, ctx.zone)
    lines = earning.quote_visit(ctx.programme, facts, member_facts(member))
    if referrer is None or referrer.status != "active":
        lines = [line for line in lines if not line.to_referrer]
    if not lines:
        note_visit(session, event, member, "nothing_due", 0, ctx.now)
        return []
    if not _first_earn(session, event, member, sum(line.points for line in lines), ctx.now, earned_before):
        return []
    beneficiaries = {member.member_id} | ({referrer.member_id} if referrer is not None else set())
    if len(beneficiaries) > 1 or any(ctx.programme.pending_for(line.rule) for line in lines):
        # in member-id order before any of them; one beneficiary's first earn locks (and creates) its account itself
        ledger.lock_accounts(session, beneficiaries, ctx.now)
    expires_on = ctx.expires_on(facts.day)
    earns = []
    for number, line in enumerate(lines):
        beneficiary = referrer.member_id if line.to_referrer and referrer else member.member_id
        entry = Entry("visit", visit_id, ctx.operator, facts.branch or None, line.description,
                      dedupe_key=f"visit:{visit_id}:{number}")
        days = ctx.programme.pending_for(line.rule)
        if days:  # locked for the refund window, released by the daily job (holds.py): nothing to announce
            holds.lock(session, beneficiary, visit_id, line.points, line.rule, entry, expires_on,
                       facts.day + timedelta(days=days), line.basis_minor, ctx.now)
            continue
        earns.append(ledger.Earn(beneficiary, line.points, line.rule, entry, expires_on, line.basis_minor))
    return ledger.earn_all(session, earns, ctx.now)  # one round trip for all the lines


# PostgreSQL: whether the visit's first line was posted (or locked) before — final, a visit only earns under its
# lock — and, when not, its outcome noted, in one statement (was three round trips: the two reads, then the note's)
_FIRST_EARN = prepared(text(
    "WITH done AS (SELECT EXISTS (SELECT 1 FROM points_postings WHERE dedupe_key = :first) "
    "OR EXISTS (SELECT 1 FROM points_holds WHERE dedupe_key = :first) AS earned), "
    "noted AS (INSERT INTO points_visit_outcomes (visit_id, member_id, state, earned_points, reversed_points, "
    "bill_minor, completed_seen_at, updated_at) SELECT :visit_id, :member_id, 'earned', :points, 0, :bill_minor, "
    ":now, :now FROM done WHERE NOT done.earned ON CONFLICT (visit_id) DO NOTHING) "
    "SELECT earned FROM done").bindparams(bindparam("member_id", type_=Uuid()), bindparam("now", type_=UtcDateTime())))


# The outcome of a visit that earns, noted with the commit (nothing reads it back; a refund's sum added after it)
_NOTE_EARNED = AtCommit("INSERT INTO points_visit_outcomes (visit_id, member_id, state, earned_points, reversed_points, "
                        "bill_minor, completed_seen_at, updated_at) VALUES (:visit_id, :member_id, 'earned', :points, 0, "
                        ":bill_minor, :now, :now) ON CONFLICT (visit_id) DO NOTHING", prepare=True, now=UtcDateTime(),
                        member_id=Uuid())


def _first_earn(session: Session, event: dict[str, Any], member: MemberCopy, points: int, now: datetime,
                earned_before: bool | None = None) -> bool:
    """True (and the visit's outcome noted as earned) if the visit's lines were neither posted nor locked before
    (``earned_before``: read already under the visit's lock). Runs under ``hold_visit``."""
    visit_id = str(event["visit_id"])
    first = _first_line(visit_id)
    if earned_before is not None and session.get_bind().dialect.name == "postgresql":
        if not earned_before:
            at_commit(session, _NOTE_EARNED, {"visit_id": visit_id, "member_id": member.member_id, "points": points,
                                              "bill_minor": event["qualifying_minor"], "now": now})
        return not earned_before
    if session.get_bind().dialect.name != "postgresql":
        if ledger.posted(session, first) or holds.locked(session, first):
            return False
        note_visit(session, event, member, "earned", points, now)
        return True
    return not session.execute(_FIRST_EARN, {"first": first, "visit_id": visit_id, "member_id": member.member_id,
                                             "points": points, "bill_minor": event["qualifying_minor"],
                                             "now": now}).scalar()


def note_visit(session: Session, event: dict[str, Any], member: MemberCopy, state: str, points: int,
               now: datetime) -> None:
    """Remember what this visit's completion earned (or why nothing), once: the audit's expectation.
    Runs under ``hold_visit``, in the transaction of the earn it describes."""
    visit_id = str(event["visit_id"])
    if session.get(VisitOutcome, visit_id) is not None:
        return
    session.add(VisitOutcome(visit_id=visit_id, member_id=member.member_id, state=state, earned_points=points,
                             reversed_points=0, bill_minor=event["qualifying_minor"],
                             completed_seen_at=now, updated_at=now))
    session.flush()


@dataclass(frozen=True)
class Refunded:
    """Everything refunded on a visit so far: what ``apply_refunds`` judges by."""

    minor: int
    full: bool


# PostgreSQL, one round trip: the visit's lock (``hold_visit``), then the refund remembered (nothing if seen before)
# and every refund of the visit summed, this one included (was four: the lock, a read, the insert, the refunds' read)
_HOLD_AND_RECORD_REFUND = text(
    "SELECT pg_advisory_xact_lock(hashtextextended(:visit_lock, 0)); "
    "WITH new AS (INSERT INTO points_visit_refunds (refund_id, visit_id, member_id, refunded_minor, \"full\", "
    "created_at) VALUES (:refund_id, :visit_id, :member_id, :refunded_minor, :full, :now) "
    "ON CONFLICT (refund_id) DO NOTHING RETURNING refunded_minor, \"full\"), "
    "refunds AS (SELECT refunded_minor, \"full\" FROM points_visit_refunds WHERE visit_id = :visit_id "
    "UNION ALL SELECT refunded_minor, \"full\" FROM new) "
    "SELECT EXISTS (SELECT 1 FROM new) AS new, CAST(coalesce(sum(refunded_minor), 0) AS bigint) AS minor, "
    "coalesce(bool_or(\"full\"), false) AS \"full\" FROM refunds"
).bindparams(bindparam("member_id", type_=Uuid()), bindparam("now", type_=UtcDateTime()))


def hold_and_record_refund(session: Session, event: dict[str, Any], now: datetime) -> Refunded | None:
    """``hold_visit``, then ``record_refund``: everything refunded on the visit so far with this refund, or None if
    this refund was seen before (one round trip on PostgreSQL)."""
    visit_id = str(event["visit_id"])
    if session.get_bind().dialect.name != "postgresql":
        hold_visit(session, visit_id)
        return refunded_on(session, visit_id) if record_refund(session, event, now) else None
    row = session.execute(_HOLD_AND_RECORD_REFUND, {
        "visit_lock": lock_name(VISIT_LOCK, visit_id), "refund_id": str(event["refund_id"]), "visit_id": visit_id,
        "member_id": event["member_id"], "refunded_minor": event["refunded_minor"], "full": event["full"],
        "now": now}).one()
    return Refunded(row.minor, row.full) if row.new else None


def refunded_on(session: Session, visit_id: str) -> Refunded | None:
    """Everything refunded on the visit so far (None: no refund). Runs under ``hold_visit``."""
    refunds = session.execute(select(VisitRefund.refunded_minor, VisitRefund.full)
                              .where(VisitRefund.visit_id == visit_id)).all()
    if not refunds:
        return None
    return Refunded(sum(minor for minor, _full in refunds), any(full for _minor, full in refunds))


def record_refund(session: Session, event: dict[str, Any], now: datetime) -> bool:
    """Remember a refund of a visit; False if this refund was seen before. Runs under ``hold_visit``."""
    refund_id = str(event["refund_id"])
    if session.get(VisitRefund, refund_id) is not None:
        return False
    session.add(VisitRefund(refund_id=refund_id, visit_id=str(event["visit_id"]), member_id=event["member_id"],
                            refunded_minor=event["refunded_minor"], full=event["full"], created_at=now))
    session.flush()
    return True


_REVERSED = aliased(PointsPosting)
_REVERSED_SO_FAR = (select(cast(func.coalesce(-func.sum(_REVERSED.points), 0), BigInteger))
                    .where(_REVERSED.reverses_id == PointsPosting.id).scalar_subquery())
"""What was reversed of an earn so far (``ledger.reversed_so_far``), read beside it."""
_ADD_REVERSED = AtCommit("UPDATE points_visit_outcomes SET reversed_points = reversed_points + :taken, updated_at = :now "
                         "WHERE visit_id = :visit_id", now=UtcDateTime())


def apply_refunds(session: Session, ctx: Context, visit_id: str, refunds: Refunded | None = None) -> list[PointsPosting]:
    """Take back what a visit earned, in proportion to everything refunded on it so far (all of it on
    a full refund). Run after each refund and after the visit's earning (a refund may arrive first), under
    ``hold_visit``: then the refunds and earns read here are all there are. ``refunds``: what was refunded so
    far, read already (``hold_and_record_refund``)."""
    if refunds is None:
        refunds = refunded_on(session, visit_id)
    if refunds is None:
        return []
    locked = holds.of_visit(session, visit_id)
    taken_before = [(hold, *holds.already_taken(session, hold)) for hold in locked]
    released = {earn.id for _hold, _already, earn in taken_before if earn is not None}
    # a visit's lines: its earns (an earn that released a hold belongs to that hold's line) and its holds
    earned = [(posting, already) for posting, already in session.execute(select(PointsPosting, _REVERSED_SO_FAR).where(
        PointsPosting.source == "visit", PointsPosting.source_ref == visit_id, PointsPosting.kind == "earn")
        .order_by(PointsPosting.id)) if posting.id not in released]
    if not earned and not locked:
        return []
    refunded, full = refunds.minor, refunds.full
    # points earned by a member since merged into another are taken back from the survivor's account
    # (the aliases are held before the accounts are locked: a merge cannot move them in between); points
    # still locked are cancelled on the account that holds them
    owners = {posting.member_id for posting, _ in earned} | {earn.member_id for _h, _a, earn in taken_before if earn}
    accounts = {owner: roster.survivor_of(session, owner, held=True) for owner in sorted(owners, key=str)}
    ledger.lock_accounts(session, set(accounts.values()) | {hold.member_id for hold in locked}, ctx.now)
    reason = "visit refunded in full" if full else f"visit refunded in part ({refunded} minor units so far)"
    postings, taken = [], 0
    for hold, already, earn in taken_before:
        due = earning.reversal_due(hold.points, hold.basis_minor, refunded, full, already)
        if due <= 0:
            continue
        if earn is None:  # inside the window: the points were never credited, so no debt
            holds.cancel(session, hold, due, Entry("visit", visit_id, ctx.operator, hold.branch, reason,
                                                   dedupe_key=f"cancel:{hold.id}:{already + due}"), ctx.now)
        else:
            entry = Entry("visit", visit_id, ctx.operator, hold.branch, reason,
                          dedupe_key=f"reverse:{earn.id}:{already + due}")
            postings.append(ledger.reverse(session, accounts[earn.member_id], earn, due, entry, ctx.now, locked=True))
        taken += due
    for posting, already in earned:
        due = earning.reversal_due(posting.points, posting.basis_minor, refunded, full, already)
        if due <= 0:
            continue
        entry = Entry("visit", visit_id, ctx.operator, posting.branch, reason,
                      dedupe_key=f"reverse:{posting.id}:{already + due}")
        postings.append(ledger.reverse(session, accounts[posting.member_id], posting, due, entry, ctx.now,
                                       locked=True))
        taken += due
    if taken:  # with the commit (nothing reads it back); no outcome row yet: nothing to add to
        at_commit(session, _ADD_REVERSED, {"taken": taken, "now": ctx.now, "visit_id": visit_id})
    return postings


def referral_bonus(session: Session, ctx: Context, referred: MemberCopy, referrer: MemberCopy) -> PointsPosting | None:
    """The referrer's bonus when the person they referred enrols (once per referred member)."""
    points = ctx.programme.referral_enrolment_points
    if points <= 0 or referrer.status != "active" or referrer.member_id == referred.member_id:
        return None
    ledger.lock_account(session, referrer.member_id, ctx.now)
    key = f"referral:enrolment:{referred.member_id}"
    if ledger.posted(session, key):
        return None
    entry = Entry("enrolment", str(referred.member_id), ctx.operator, referred.home_branch,
                  "referred a new member", dedupe_key=key)
    return ledger.earn(session, referrer.member_id, points, "referral", entry, ctx.expires_on(ctx.today), ctx.now)


def review(session: Session, ctx: Context, event: dict[str, Any], member: MemberCopy) -> list[PointsPosting]:
    """Points for answering a satisfaction survey: once per visit (or per feedback without a visit)."""
    if event["kind"] != "survey" or member.status != "active":
        return []
    points = earning.review_award(ctx.programme, event["satisfaction"])
    if points == 0:
        return []
    key = f"review:visit:{event['visit_id']}" if event["visit_id"] else f"review:{event['feedback_id']}"
    ledger.lock_account(session, member.member_id, ctx.now)
    if ledger.posted(session, key):
        return []
    entry = Entry("feedback", str(event["feedback_id"]), ctx.operator, event["branch"],
                  f"survey answered ({event['satisfaction']})", dedupe_key=key)
    if points > 0:
        return [ledger.earn(session, member.member_id, points, "review", entry, ctx.expires_on(ctx.today), ctx.now)]
    return ledger.deduct(session, member.member_id, -points, entry, ctx.today, ctx.now, cap_at_balance=True)


def _earned_today(session: Session, ctx: Context, member_id: uuid.UUID, rule: str) -> int:
    start = datetime.combine(ctx.today, time.min, tzinfo=ctx.zone).astimezone(UTC)
    total = session.scalar(select(func.coalesce(func.sum(PointsPosting.points), 0)).where(
        PointsPosting.member_id == member_id, PointsPosting.kind == "earn", PointsPosting.rule == rule,
        PointsPosting.created_at >= start))
    return int(total or 0)


def earn_command(session: Session, ctx: Context, member: MemberCopy, data: dict[str, Any],
                 key: str) -> list[PointsPosting]:
    """An award asked for by the desk, the app or a manager: an activity, an online interaction, or a
    manual adjustment (positive: points given; negative: points taken back, never below zero)."""
    rule = data["rule"]
    dedupe = f"earn:{key}"
    if rule == "activity":
        points, reason = ctx.programme.activity_points, data.get("reason") or "attended an activity"
        dedupe = f"activity:{member.member_id}:{data['source_ref']}"  # once per member and activity
    elif rule == "interaction":
        ledger.lock_account(session, member.member_id, ctx.now)  # the day's total is read under the lock
        earned = _earned_today(session, ctx, member.member_id, "interaction")
        points = earning.interaction_award(ctx.programme, data["interaction"], earned)
        reason = data.get("reason") or f"online {data['interaction'].replace('_', ' ')}"
        if points <= 0:
            raise Conflict(f"The daily limit of {ctx.programme.interaction_daily_cap} points for online "
                           "interactions is reached; try again tomorrow.")
    else:
        points, reason = data["points"], data["reason"]
    entry = Entry(rule, data["source_ref"], ctx.operator, data["branch"], reason, dedupe_key=dedupe)
    try:
        # the dedupe key's unique index is the check: no read before the write on this hot path
        if points < 0:
            return ledger.deduct(session, member.member_id, -points, entry, ctx.today, ctx.now, cap_at_balance=False)
        return [ledger.earn(session, member.member_id, points, rule, entry, ctx.expires_on(ctx.today), ctx.now)]
    except IntegrityError as refused:
        if "dedupe_key" not in str(refused.orig):  # only the dedupe key is expected to clash here
            raise
        raise Conflict("These points were already given for this.", {"source_ref": ["Already awarded."]}) from None
