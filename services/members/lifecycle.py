"""A member's life after enrolment: merge of a duplicate (and its reversal), freeze, reactivation, closure.

- **Merge**: the duplicate's visits, refunds, points, top-ups, quota uses and referrals move to the
  survivor; the survivor's tier is re-evaluated and is never lower than either member's; the duplicate
  stays as a record pointing at the survivor (``status: merged``; its card still finds it), with its
  blind indexes cleared so that it matches no new enrolment. What moved is kept in ``member_merges``:
  the merge is audited and can be reversed row for row.
- **Freeze**: no earning, redeeming, quota use or discount until reactivated (activity is still kept).
- **Close** (erasure request): personal fields and blind indexes are removed; the member's id, card
  number and anonymised activity stay for the ledgers.
Every status change is audited in ``member_status_changes`` and announced as ``member_status_changed``.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.kit.clock import local_date
from services.kit.crypto import Encrypted
from services.kit.db import fetch
from services.kit.errors import Conflict, Invalid, NotFound
from services.kit.telemetry import counter
from services.members import activity, identities, quotas, segmentation, tier_ledger, windows
from services.members.models import Member, MemberMerge, MemberNameToken, MemberStatusChange
from services.members.register import parse_id
from services.members.rules import tiers
from services.members.rules.programme import Programme
from services.members.schemas import ConsentsSchema
from services.members.tier_ledger import Emit

STATUS_CHANGES = counter("careloop_members_status_changes_total", "Member status changes", ("to_status",))
MERGES = counter("careloop_members_merges_total", "Merges of duplicate members, and reversals", ("action",))

_MERGED_FIELDS = ("status", "tier", "tier_review_on", "tier_pending", "tier_pending_on", "phone_index",
                  "document_index", "name_index", "name_birth_index")
_ERASED = (*(column.key for column in Member.__table__.columns if isinstance(column.type, Encrypted)),
           "birth_mmdd", "document_type", "name_index", "name_birth_index", "phone_index", "document_index")
"""What closing a membership erases: every encrypted (personal) column, and what is derived from them."""


def lock_pair(session: Session, first_id: Any, second_id: Any) -> tuple[Member, Member]:
    """Both members locked, always in id order (no deadlock with another merge or a batch)."""
    first, second = parse_id(first_id), parse_id(second_id)
    if first == second:
        raise Invalid("A member cannot be merged into itself.", {"merged_id": ["Same as the survivor."]})
    found = {m.id: m for m in session.scalars(select(Member).where(Member.id.in_(sorted([first, second])))
                                              .order_by(Member.id).with_for_update())}
    for wanted in (first, second):
        if wanted not in found:
            raise NotFound(f"No member {wanted}.")
    return found[first], found[second]


def _snapshot(member: Member, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: (value.isoformat() if isinstance(value, date) else value)
            for name in names for value in [getattr(member, name)]}


def merge(session: Session, survivor: Member, merged: Member, programme: Programme, zone: ZoneInfo, reason: str,
          now: datetime, emit: Emit, actor: str) -> MemberMerge:
    """Merge the duplicate ``merged`` into ``survivor`` (both locked)."""
    for member in (survivor, merged):
        if member.status not in ("active", "frozen"):
            raise Conflict(f"Member {member.id} is {member.status}; only active or frozen members can be merged.")
    record: dict[str, Any] = {
        "merged_before": _snapshot(merged, _MERGED_FIELDS),
        "survivor_before": _snapshot(survivor, ("tier", "tier_pending", "tier_pending_on")),
        "activity": activity.move(session, merged.id, survivor.id),
        "quota_uses": quotas.move(session, merged.id, survivor.id),
        "referrals": [str(i) for i in session.scalars(select(Member.id).where(Member.referred_by_id == merged.id))],
    }
    if record["referrals"]:
        session.execute(update(Member).where(Member.referred_by_id == merged.id).values(referred_by_id=survivor.id))
    row = MemberMerge(id=uuid.uuid4(), survivor_id=survivor.id, merged_id=merged.id, reason=reason,
                      record=json.dumps(record), merged_at=now, merged_by=actor)
    session.add(row)
    merged.status, merged.merged_into_id, merged.updated_at = "merged", survivor.id, now
    for name in ("phone_index", "document_index", "name_index", "name_birth_index", "tier_review_on",
                 "tier_pending", "tier_pending_on"):
        setattr(merged, name, None)
    segmentation.forget(session, merged.id)
    session.flush()
    activity.refresh_summary(session, merged.id, now)
    activity.refresh_summary(session, survivor.id, now)
    windows.refresh(session, [merged.id, survivor.id], local_date(now, zone), now)

    # the survivor holds the better of both tiers, or what the combined 12 months earn if that is higher
    today = local_date(now, zone)
    earned = tiers.evaluate(programme, tier_ledger.activity_as_of(session, programme, survivor.id, today))
    best = max(programme.rank_or_top(survivor.tier), programme.rank_or_top(merged.tier), programme.rank(earned.tier))
    if best > programme.rank_or_top(survivor.tier):
        tier_ledger.apply_change(session, survivor, tiers.Change(survivor.tier, programme.tiers[best].code, "up",
                                                                 "merge"), programme, zone, now, emit, actor,
                                 f"merge:{row.id}")
    elif programme.rank(earned.tier) >= programme.rank_or_top(survivor.tier):
        survivor.tier_pending = survivor.tier_pending_on = None  # the combined activity keeps the tier
    emit("member_merged", {"survivor_id": survivor.id, "merged_id": merged.id, "merge_id": row.id})
    MERGES.labels("merge").inc()
    return row


def already_merged(session: Session, survivor: Member, merged: Member) -> MemberMerge | None:
    """The merge in force of ``merged`` into ``survivor``, if it was already done (a retried request)."""
    if merged.status != "merged" or merged.merged_into_id != survivor.id:
        return None
    return session.scalars(select(MemberMerge).where(MemberMerge.survivor_id == survivor.id,
                                                     MemberMerge.merged_id == merged.id,
                                                     MemberMerge.reversed_at.is_(None))).first()


def merges_of(session: Session, member_id: uuid.UUID) -> list[MemberMerge]:
    """Merges the member took part in, as survivor or as duplicate, newest first."""
    return list(session.scalars(select(MemberMerge).where(
        (MemberMerge.survivor_id == member_id) | (MemberMerge.merged_id == member_id))
        .order_by(MemberMerge.merged_at.desc()).limit(100)))


def get_merge(session: Session, merge_id: Any, lock: bool = False) -> MemberMerge:
    return fetch(session, MemberMerge, merge_id, "merge", lock=lock)


def reverse(session: Session, row: MemberMerge, programme: Programme, zone: ZoneInfo, reason: str, now: datetime,
            emit: Emit, actor: str) -> MemberMerge:
    """Undo a merge row for row; reversing twice is one reversal."""
    if row.reversed_at is not None:
        return row
    survivor, merged = lock_pair(session, row.survivor_id, row.merged_id)
    if merged.status != "merged" or merged.merged_into_id != survivor.id:
        raise Conflict("The merged member changed since the merge; it cannot be reversed automatically.")
    record = json.loads(row.record)
    activity.move(session, survivor.id, merged.id, record["activity"])
    quotas.move(session, survivor.id, merged.id, record["quota_uses"])
    if record["referrals"]:
        session.execute(update(Member).where(Member.id.in_([uuid.UUID(i) for i in record["referrals"]]),
                                             Member.referred_by_id == survivor.id).values(referred_by_id=merged.id))
    before = record["merged_before"]
    merged.merged_into_id = None
    for name in _MERGED_FIELDS:
        value = before[name]
        if name in ("tier_review_on", "tier_pending_on") and value is not None:
            value = date.fromisoformat(value)
        setattr(merged, name, value)
    merged.updated_at = now
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise Conflict("Another member now has this member's phone or ID document; change one of them first, "
                       "then reverse the merge.") from None
    activity.refresh_summary(session, merged.id, now)
    activity.refresh_summary(session, survivor.id, now)
    windows.refresh(session, [merged.id, survivor.id], local_date(now, zone), now)

    # the survivor keeps what it held before the merge, or what its own 12 months earn, whichever is higher
    today = local_date(now, zone)
    earned = tiers.evaluate(programme, tier_ledger.activity_as_of(session, programme, survivor.id, today))
    held_before = programme.rank_or_top(record["survivor_before"]["tier"])
    fair = programme.tiers[max(held_before, programme.rank(earned.tier))].code
    if programme.rank_or_top(survivor.tier) > programme.rank(fair):
        tier_ledger.apply_change(session, survivor, tiers.Change(survivor.tier, fair, "down", "merge"), programme,
                                 zone, now, emit, actor, f"merge:{row.id}", "merge reversed")
    row.reversed_at, row.reversed_by, row.reverse_reason = now, actor, reason
    emit("member_unmerged", {"survivor_id": survivor.id, "merged_id": merged.id, "merge_id": row.id})
    MERGES.labels("reverse").inc()
    return row


def _status_change(session: Session, member: Member, to_status: str, reason: str, note: str | None, now: datetime,
                   emit: Emit, actor: str) -> None:
    from_status = member.status
    member.status, member.updated_at = to_status, now
    session.add(MemberStatusChange(member_id=member.id, from_status=from_status, to_status=to_status,
                                   reason=f"{reason}: {note}" if note else reason, actor=actor, changed_at=now))
    emit("member_status_changed", {"member_id": member.id, "from_status": from_status, "to_status": to_status,
                                   "reason": reason})
    STATUS_CHANGES.labels(to_status).inc()


def _refuse_if_gone(member: Member) -> None:
    if member.status == "merged":
        raise Conflict(f"This member was merged into {member.merged_into_id}; act on that member.",
                       details={"merged_into": str(member.merged_into_id)})


def _move(session: Session, member: Member, from_status: str, to_status: str, refusal: str, reason: str,
          note: str | None, now: datetime, emit: Emit, actor: str) -> bool:
    """``from_status`` -> ``to_status``; False if the membership is there already, ``refusal`` from elsewhere."""
    _refuse_if_gone(member)
    if member.status == to_status:
        return False
    if member.status != from_status:
        raise Conflict(f"This membership is {member.status}; {refusal}.")
    _status_change(session, member, to_status, reason, note, now, emit, actor)
    return True


def freeze(session: Session, member: Member, reason: str, note: str | None, now: datetime, emit: Emit,
           actor: str) -> bool:
    """Active -> frozen; False if already frozen."""
    if not _move(session, member, "active", "frozen", "it cannot be frozen", reason, note, now, emit, actor):
        return False
    segmentation.forget(session, member.id)
    return True


def unfreeze(session: Session, member: Member, reason: str, note: str | None, now: datetime, emit: Emit,
             actor: str) -> bool:
    """Frozen -> active; False if already active. The caller then reassesses the tier."""
    return _move(session, member, "frozen", "active", "it cannot be reactivated", reason, note, now, emit, actor)


def close(session: Session, member: Member, reason: str, note: str | None, now: datetime, emit: Emit,
          actor: str) -> bool:
    """Close and erase personal data (the id, card number and anonymised activity stay); False if closed already."""
    _refuse_if_gone(member)
    if member.status == "closed":
        return False
    for name in _ERASED:
        setattr(member, name, None)
    member.gender = "undisclosed"
    for channel in ConsentsSchema().fields:
        setattr(member, f"consent_{channel}", False)
    member.consents_updated_at = now
    member.tier_review_on = member.tier_pending = member.tier_pending_on = None
    session.execute(delete(MemberNameToken).where(MemberNameToken.member_id == member.id))
    identities.forget(session, member.id)
    segmentation.forget(session, member.id)
    _status_change(session, member, "closed", reason, note, now, emit, actor)
    return True


def status_history(session: Session, member_id: uuid.UUID, limit: int = 50) -> list[MemberStatusChange]:
    """The membership's status changes, newest first."""
    return list(session.scalars(select(MemberStatusChange).where(MemberStatusChange.member_id == member_id)
                                .order_by(MemberStatusChange.id.desc()).limit(limit)))
