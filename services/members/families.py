"""Family accounts: members linked under one contact person (the guardian of its minors), with an audit of
every link and unlink. What a family may share (points, stored value) is the points service's business: it
asks ``get_family`` here when a transfer is made.

A member belongs to at most one family (``family_members.member_id`` is the key). Lock order: the family's
row, then member rows in id order — so a link and an unlink of one family take turns, and two families
linking the same member at once find the key taken (the second gets 409).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.kit.db import fetch, unique_or
from services.kit.errors import Conflict, NotFound
from services.kit.telemetry import counter
from services.members.models import Family, FamilyChange, FamilyMember, Member

CHANGES = counter("careloop_members_family_changes_total", "Family accounts created, members linked and unlinked",
                  ("action",))
RELATIONS = ("contact", "adult", "minor")
GUARDIAN_REACH = frozenset({"phone", "email", "wechat_openid", "line_user_id", "preferred_language", "consent_sms",
                            "consent_email", "consent_wechat", "consent_line", "consent_marketing"})
"""What of a minor's contact answer is the family contact person's: where and in which language messages go,
and the consents that allow them (the guardian's). Name, status, tier, branch and birthday stay the minor's."""


def _audit(session: Session, family: Family, member_id: uuid.UUID, action: str, relation: str | None,
           reason: str | None, actor: str, now: datetime) -> None:
    session.add(FamilyChange(family_id=family.id, member_id=member_id, action=action, relation=relation,
                             reason=reason, actor=actor[:200], changed_at=now))
    CHANGES.labels(action).inc()


def _join(session: Session, family: Family, member: Member, relation: str, actor: str, now: datetime) -> None:
    if member.status != "active":
        raise Conflict(f"This membership is {member.status}; it cannot join a family.")
    taken = session.get(FamilyMember, member.id)
    if taken is not None:
        raise Conflict("This member already belongs to a family; unlink them there first.",
                       {"member_id": ["Already in a family."]}, details={"family_id": str(taken.family_id)})
    with unique_or(session, Conflict("This member already belongs to a family; unlink them there first.",
                                     {"member_id": ["Already in a family."]})):  # linked elsewhere at this moment
        session.add(FamilyMember(member_id=member.id, family_id=family.id, relation=relation, linked_at=now,
                                 linked_by=actor[:200]))
    _audit(session, family, member.id, "linked", relation, None, actor, now)


def create(session: Session, contact: Member, branch: str, actor: str, now: datetime) -> Family:
    """A family with ``contact`` (locked by the caller) as its contact person and first member."""
    family = Family(id=uuid.uuid4(), contact_member_id=contact.id, home_branch=branch, created_at=now,
                    updated_at=now, created_by=actor[:200])
    session.add(family)
    session.flush()
    _audit(session, family, contact.id, "created", "contact", None, actor, now)
    _join(session, family, contact, "contact", actor, now)
    return family


def get(session: Session, family_id: Any, lock: bool = False) -> Family:
    return fetch(session, Family, family_id, "family", lock=lock)


def link(session: Session, family: Family, member: Member, relation: str, actor: str, now: datetime) -> Family:
    """Add ``member`` (locked after the family) to the family (locked by the caller)."""
    _join(session, family, member, relation, actor, now)
    family.updated_at = now
    return family


def unlink(session: Session, family: Family, member_id: uuid.UUID, reason: str, actor: str, now: datetime) -> Family:
    """Take a member out of the family (locked by the caller). The contact person stays while others remain;
    the last member leaving ends the family."""
    row = session.get(FamilyMember, member_id)
    if row is None or row.family_id != family.id:
        raise NotFound("This member is not in this family.")
    others = [m for m in members_of(session, family.id) if m.member_id != member_id]
    if member_id == family.contact_member_id and others:
        raise Conflict("The contact person cannot leave while the family has other members.",
                       {"member_id": ["The family's contact person."]})
    session.delete(row)
    _audit(session, family, member_id, "unlinked", row.relation, reason, actor, now)
    family.updated_at = now
    if not others:
        family.ended_at = now
    session.flush()
    return family


def members_of(session: Session, family_id: uuid.UUID) -> list[FamilyMember]:
    return list(session.scalars(select(FamilyMember).where(FamilyMember.family_id == family_id)
                                .order_by(FamilyMember.linked_at, FamilyMember.member_id)))


def view(session: Session, family: Family) -> dict[str, Any]:
    """The family as ``FamilySchema`` shows it."""
    return {"id": family.id, "contact_member_id": family.contact_member_id, "home_branch": family.home_branch,
            "created_at": family.created_at, "updated_at": family.updated_at, "ended_at": family.ended_at,
            "members": members_of(session, family.id)}


def of_member(session: Session, member_id: uuid.UUID) -> Family:
    row = session.get(FamilyMember, member_id)
    if row is None:
        raise NotFound("This member belongs to no family.")
    return get(session, row.family_id)


def history(session: Session, family_id: uuid.UUID) -> list[FamilyChange]:
    return list(session.scalars(select(FamilyChange).where(FamilyChange.family_id == family_id)
                                .order_by(FamilyChange.id)))


class ReachedThrough:
    """A minor as ``ContactSchema`` dumps it, reached through their guardian (``GUARDIAN_REACH``)."""

    def __init__(self, minor: Member, guardian: Member) -> None:
        self._minor, self._guardian = minor, guardian

    def __getattr__(self, name: str) -> Any:
        return getattr(self._guardian if name in GUARDIAN_REACH else self._minor, name)


def reached_as(session: Session, member: Member) -> Member | ReachedThrough:
    """How to reach ``member``: a minor of a family is reached through the family's contact person (while that
    person is an active member); everyone else directly."""
    row = session.get(FamilyMember, member.id)
    if row is None or row.relation != "minor":
        return member
    family = session.get(Family, row.family_id)
    guardian = session.get(Member, family.contact_member_id) if family is not None else None
    if guardian is None or guardian.id == member.id or guardian.status != "active":
        return member
    return ReachedThrough(member, guardian)
