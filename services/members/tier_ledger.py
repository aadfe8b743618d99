"""The tier ledger: a member's tier, its changes (history + ``tier_changed``), upgrades after events and the
yearly review as bounded batches. Rules come from ``tiers``; this module reads and writes.

Locks: every change of a member's tier happens with the member's row locked (``FOR UPDATE`` on
PostgreSQL; SQLite runs one transaction at a time), so an upgrade after an event and the nightly review
of the same member never overwrite each other. Every transaction that locks several members locks them in
id order — a batch of the review, a merge's two members, an event's member and the survivor it was merged
into — so none waits for another that waits for it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Date, Uuid, and_, bindparam, or_, select
from sqlalchemy.orm import Session

from services.kit.aliases import follow
from services.kit.clock import local_date
from services.kit.commit import AtCommit, at_commit
from services.kit.errors import Conflict, Invalid
from services.kit.models import UtcDateTime
from services.kit.paging import keyset_page
from services.kit.telemetry import counter
from services.members import activity
from services.members.arrivals import Held
from services.members.models import Member, TierChange
from services.members.rules import tiers
from services.members.rules.programme import Programme
from services.members.rules.tiers import Activity, Change

Emit = Callable[[str, dict[str, Any]], Any]

TIER_CHANGES = counter("careloop_members_tier_changes_total", "Tier changes", ("direction", "reason"))
REVIEW_NOTICES = counter("careloop_members_tier_review_notices_total", "Review notices of a lower tier")

CHAIN_LOCK_ATTEMPTS = 5  # merges committing while we wait for the chain's locks: read and lock again this often


def _chain(session: Session, wanted: uuid.UUID, rows: dict[uuid.UUID, Any] | None = None) -> list[uuid.UUID] | None:
    """The ids from ``wanted`` to the member it was merged into (and on), read from ``rows`` when given
    (locked rows) or from the table; None if a member of the chain does not exist."""
    def next_of(member_id: uuid.UUID) -> uuid.UUID | None:
        found = rows.get(member_id) if rows is not None else session.execute(_LINK, {"id": member_id}).first()
        if found is None:
            raise LookupError(member_id)
        return found.merged_into_id

    try:
        return follow(next_of, wanted)
    except LookupError:
        return None


# built once: every event about a member runs them
_LINK = select(Member.id, Member.merged_into_id).where(Member.id == bindparam("id"))
_LOCK_CHAIN = (select(Member).where(Member.id.in_(bindparam("ids", expanding=True))).order_by(Member.id)
               .with_for_update().execution_options(populate_existing=True))


def member_for_event(session: Session, wanted: uuid.UUID) -> Member:
    """The member an event is about, locked; events about a merged member apply to the survivor.

    The ids of the merge chain are locked together in id order (as merges and the review lock), then the
    chain is read again from the locked rows: a merge or reversal that committed while we waited is seen
    and followed."""
    chain = _chain(session, wanted)
    for _attempt in range(CHAIN_LOCK_ATTEMPTS):
        if chain is None:
            break
        locked = {member.id: member for member in session.scalars(_LOCK_CHAIN, {"ids": chain})}
        now_chain = _chain(session, wanted, locked)
        if now_chain is not None:
            return locked[now_chain[-1]]
        chain = _chain(session, wanted)  # the chain changed while we waited: lock its new members too
    if session.get(Member, wanted) is None:
        raise Invalid(f"No member {wanted}.", {"member_id": ["Unknown member."]})
    raise Invalid(f"Member {wanted}'s merges kept changing while it was being locked.",
                  {"member_id": ["Merge chain kept changing."]})


def window_as_of(day: date) -> tuple[date, date]:
    return tiers.window(day)


def activity_as_of(session: Session, programme: Programme, member_id: uuid.UUID, day: date) -> Activity:
    first, last = tiers.window(day)
    return activity.activity_of(session, member_id, first, last, programme.tier_visit_kinds)


def _next_review(programme: Programme, zone: ZoneInfo, now: datetime) -> date | None:
    """A member's next review day after a change, if the programme reviews on tier anniversaries (None: unchanged)."""
    if programme.review.basis != "tier_anniversary":
        return None
    today = local_date(now, zone)
    return tiers.next_anniversary(today, today)


def _announce(change: Change, member_id: uuid.UUID, now: datetime, emit: Emit) -> None:
    emit("tier_changed", {"member_id": member_id, "from_tier": change.from_tier, "to_tier": change.to_tier,
                          "direction": change.direction, "reason": change.reason, "effective_at": now})
    TIER_CHANGES.labels(change.direction, change.reason).inc()


def apply_change(session: Session, member: Member, change: Change, programme: Programme, zone: ZoneInfo,
                 now: datetime, emit: Emit, actor: str, source_ref: str | None = None,
                 note: str | None = None) -> TierChange:
    """Give the member its new tier: history row, ``tier_changed``, and any notice outstanding withdrawn."""
    member.tier = change.to_tier
    member.tier_since = now
    member.tier_pending = member.tier_pending_on = None
    review_on = _next_review(programme, zone, now)
    if review_on is not None and member.tier_review_on is not None:
        member.tier_review_on = review_on
    row = TierChange(member_id=member.id, from_tier=change.from_tier, to_tier=change.to_tier,
                     direction=change.direction, reason=change.reason, source_ref=source_ref, note=note,
                     actor=actor, effective_at=now)
    session.add(row)
    _announce(change, member.id, now, emit)
    return row


# a held member's change (``arrivals``: locked by the read that held it), written with the commit as ``apply_change``
# writes it through the ORM: the member is not loaded, and the lock is held for no round trip of the change's own
_HELD_CHANGE = AtCommit(
    "UPDATE members SET tier = :to_tier, tier_since = :now, tier_pending = NULL, tier_pending_on = NULL, "
    "tier_review_on = CASE WHEN tier_review_on IS NULL THEN NULL "
    "ELSE COALESCE(CAST(:review_on AS date), tier_review_on) END WHERE id = :member_id",
    prepare=True, member_id=Uuid(), now=UtcDateTime(), review_on=Date())
_HELD_HISTORY = AtCommit(
    "INSERT INTO tier_changes (member_id, from_tier, to_tier, direction, reason, source_ref, note, actor, "
    "effective_at) VALUES (:member_id, :from_tier, :to_tier, :direction, :reason, :source_ref, :note, :actor, :now)",
    prepare=True, member_id=Uuid(), now=UtcDateTime())
_HELD_NOTICE_WITHDRAWN = AtCommit(
    "UPDATE members SET tier_pending = NULL, tier_pending_on = NULL WHERE id = :member_id", prepare=True,
    member_id=Uuid())


def _apply_to_held(session: Session, member: Held, change: Change | None, programme: Programme, zone: ZoneInfo,
                   now: datetime, emit: Emit, actor: str, source_ref: str | None, note: str | None) -> None:
    """``apply_change`` (or only the notice withdrawn, ``change`` None) of a held member, with the commit."""
    if change is None:
        at_commit(session, _HELD_NOTICE_WITHDRAWN, {"member_id": member.id})
        return
    at_commit(session, _HELD_CHANGE, {"member_id": member.id, "to_tier": change.to_tier, "now": now,
                                      "review_on": _next_review(programme, zone, now)})
    at_commit(session, _HELD_HISTORY, {
        "member_id": member.id, "from_tier": change.from_tier, "to_tier": change.to_tier,
        "direction": change.direction, "reason": change.reason, "source_ref": source_ref, "note": note,
        "actor": actor, "now": now})
    _announce(change, member.id, now, emit)


def reassess(session: Session, member: Member | Held, programme: Programme, zone: ZoneInfo, now: datetime, emit: Emit,
             actor: str, source_ref: str | None = None, reason: str | None = None,
             counted: Activity | None = None) -> Change | None:
    """After new activity: upgrade at once if the last 12 months earn a higher tier (never lower one).

    A member who earns their tier again while a review notice runs keeps it: the notice is withdrawn.
    Frozen and closed members keep their activity but change tier only when active again. ``reason``: what the
    change is announced as, instead of the path that earned it (``import``: the path goes into the note).
    ``counted``: the 12 months' activity when the caller has it (``arrivals``: read with the member's lock);
    a ``Held`` member is never loaded: its change is written with the commit (``_apply_to_held``).
    """
    if member.status != "active":
        return None
    if counted is None:
        counted = activity_as_of(session, programme, member.id, local_date(now, zone))
    qualification = tiers.evaluate(programme, counted)
    withdrawn = (member.tier_pending is not None
                 and programme.rank(qualification.tier) >= programme.rank_or_top(member.tier))
    change = tiers.upgrade(programme, member.tier, qualification)
    if not withdrawn and change is None:
        return None
    note = None
    if change is not None and reason is not None:
        note = f"earned by {change.reason}"
        change = Change(change.from_tier, change.to_tier, change.direction, reason)
    if isinstance(member, Held):
        _apply_to_held(session, member, change, programme, zone, now, emit, actor, source_ref, note)
        return change
    if withdrawn:
        member.tier_pending = member.tier_pending_on = None
    if change is not None:
        apply_change(session, member, change, programme, zone, now, emit, actor, source_ref, note)
    return change


def points_may_change_tier(session: Session, member: Member | Held, programme: Programme, zone: ZoneInfo,
                           now: datetime, points: int | None = None) -> bool:
    """Whether points earned could change the tier: the window's points (``points``, or read) reach the points
    threshold of a higher tier, or a review notice runs (which any path may withdraw). Other paths were judged when
    their own activity arrived (a paid visit's spend and visit count by ``visit_completed``, which comes first)."""
    if member.status != "active":
        return False
    if member.tier_pending is not None:
        return True
    if points is None:
        first, last = tiers.window(local_date(now, zone))
        points = activity.points_of(session, member.id, first, last)
    return tiers.points_may_upgrade(programme, member.tier, points)


def reassess_after_points(session: Session, member: Member, programme: Programme, zone: ZoneInfo, now: datetime,
                          emit: Emit, actor: str, source_ref: str | None = None) -> Change | None:
    """After points earned: ``reassess`` only if the points could change the tier (``points_may_change_tier``),
    so a bill's points cost one sum instead of a second full reassessment."""
    if not points_may_change_tier(session, member, programme, zone, now):
        return None
    return reassess(session, member, programme, zone, now, emit, actor, source_ref)


def _due(query: Any, column: Any, today: date, cursor: Any) -> Any:
    query = query.where(column <= today)
    if cursor:
        day, last_id = date.fromisoformat(cursor["day"]), uuid.UUID(cursor["id"])
        query = query.where(or_(column > day, and_(column == day, Member.id > last_id)))
    return query.order_by(column, Member.id)


def _batch(session: Session, column: Any, today: date, cursor: Any, size: int) -> tuple[list[Member], Any]:
    """The next ``size`` members due (by date, then id), locked in id order (the order a merge locks two
    members in: locked in date order, a batch and a merge could each wait for the other); and the cursor
    after them (None at the end)."""
    due = _due(select(Member.id, column).where(Member.status.in_(("active", "frozen"))), column, today, cursor)
    found = session.execute(due.limit(size)).all()
    after = {"day": found[-1][1].isoformat(), "id": str(found[-1][0])} if len(found) == size else None
    if not found:
        return [], after
    # locked, the rows are read again: one that stopped being due meanwhile (a merge, an upgrade) drops out
    query = (select(Member).where(Member.id.in_([row[0] for row in found]), Member.status.in_(("active", "frozen")),
                                  column <= today).order_by(Member.id).execution_options(populate_existing=True))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(of=Member)
    members = list(session.scalars(query))
    members.sort(key=lambda member: (getattr(member, column.key), member.id))
    return members, after


def _qualifications(session: Session, programme: Programme, members: list[Member],
                    today: date) -> list[tuple[Member, tiers.Qualification]]:
    """Each member of a batch with what its 12 months that ended yesterday qualify it for (one query)."""
    first, last = tiers.window(today - timedelta(days=1))
    sums = activity.window_sums(session, [m.id for m in members], first, last, programme.tier_visit_kinds)
    return [(member, tiers.evaluate(programme, sums[member.id].activity if member.id in sums else Activity()))
            for member in members]


def review_batch(session: Session, programme: Programme, zone: ZoneInfo, today: date, now: datetime,
                 cursor: Any, size: int, emit: Emit) -> tuple[Any, int]:
    """One batch of the yearly reviews due on ``today`` (and any missed before): ``run_batches`` step.

    The review judges the 12 months that ended yesterday. A member who earns less gets a notice of the
    tier announced (or, without notice days, drops at once); every reviewed member gets its next date.
    """
    members, cursor_out = _batch(session, Member.tier_review_on, today, cursor, size)
    for member, qualification in _qualifications(session, programme, members, today):
        decision = tiers.review(programme, member.tier, qualification)
        source = f"review:{today.isoformat()}"
        if decision.action == "raise" and member.status == "active":
            apply_change(session, member, Change(member.tier, decision.target, "up", decision.reason), programme,
                         zone, now, emit, "service:members (review)", source)
        elif decision.action == "lower":
            apply_change(session, member, Change(member.tier, decision.target, "down", "review"), programme, zone,
                         now, emit, "service:members (review)", source)
        elif decision.action == "notice" and member.tier_pending is None:
            member.tier_pending = decision.target
            member.tier_pending_on = today + timedelta(days=programme.review.notice_days)
            emit("tier_review_notice", {"member_id": member.id, "current_tier": member.tier,
                                        "next_tier": decision.target, "effective_on": member.tier_pending_on})
            REVIEW_NOTICES.inc()
        enrolled_on = local_date(member.enrolled_at, zone)
        since_on = local_date(member.tier_since or member.enrolled_at, zone)
        member.tier_review_on = tiers.next_review_on(programme, enrolled_on, since_on, today)
    return cursor_out, len(members)


def notice_batch(session: Session, programme: Programme, zone: ZoneInfo, today: date, now: datetime,
                 cursor: Any, size: int, emit: Emit) -> tuple[Any, int]:
    """One batch of review notices ending on ``today``: drop the tier, or keep it if earned meanwhile."""
    members, cursor_out = _batch(session, Member.tier_pending_on, today, cursor, size)
    for member, qualification in _qualifications(session, programme, members, today):
        change = tiers.end_of_notice(programme, member.tier, member.tier_pending or member.tier, qualification)
        member.tier_pending = member.tier_pending_on = None
        if change is not None:
            apply_change(session, member, change, programme, zone, now, emit, "service:members (review)",
                         f"review:{today.isoformat()}")
    return cursor_out, len(members)


def status(session: Session, programme: Programme, member: Member, today: date, names_of: Callable[[str], Any],
           currency: str) -> dict[str, Any]:
    """The tier page (``TierStatusSchema``): tier, since when, next review, any notice, the 12 months counted,
    what is missing."""
    first, last = tiers.window(today)
    counted = activity.activity_of(session, member.id, first, last, programme.tier_visit_kinds)
    qualification = tiers.evaluate(programme, counted)
    pending = ({"tier": member.tier_pending, "effective_on": member.tier_pending_on.isoformat()}
               if member.tier_pending and member.tier_pending_on else None)
    return {
        "member_id": str(member.id), "status": member.status, "tier": member.tier, "tier_names": names_of(member.tier),
        "tier_since": member.tier_since, "next_review_on": member.tier_review_on,
        "pending": pending, "window": {"from": first.isoformat(), "to": last.isoformat()}, "currency": currency,
        "activity": counted,
        "qualifies_for": {"tier": qualification.tier, "paths": list(qualification.paths)},
        "next": tiers.missing_for(programme, member.tier, counted),
        "lifetime": activity.lifetime(session, member.id),
    }


def history(session: Session, member_id: uuid.UUID, limit: int,
            cursor: str | None) -> tuple[list[TierChange], str | None]:
    """The member's tier changes, newest first, a page at a time."""
    return keyset_page(session, select(TierChange).where(TierChange.member_id == member_id),
                       TierChange.id, TierChange.id, limit, cursor, descending=True)


def set_by_hand(session: Session, member: Member, programme: Programme, zone: ZoneInfo, tier: str, reason: str,
                note: str, now: datetime, emit: Emit, actor: str, source_ref: str | None) -> TierChange | None:
    """A tier given by a group admin (goodwill, correction) or bought with points; None if already held."""
    try:
        target = programme.rank(tier)
    except KeyError:
        raise Invalid(f"The programme has no tier {tier!r}.", {"tier": [f"One of {', '.join(programme.codes)}."]}) from None
    if member.status not in ("active", "frozen"):
        raise Conflict(f"This membership is {member.status}; its tier cannot change.")
    if reason == "points_purchase" and (member.status != "active" or target <= programme.rank_or_top(member.tier)):
        # a purchase only ever raises an active member's tier (points refunds the points when this refuses)
        raise Conflict(f"A {tier} upgrade cannot be bought: the member holds {member.tier}"
                       + (f" and is {member.status}." if member.status != "active" else " already, or higher."),
                       {"tier": ["Not above the member's tier."]})
    if tier == member.tier:
        return None
    direction = "up" if target > programme.rank_or_top(member.tier) else "down"
    return apply_change(session, member, Change(member.tier, tier, direction, reason), programme, zone, now, emit,
                        actor, source_ref, note)
