"""Yearly quotas (a free cleaning, a full oral exam): their use for a visit and its undoing.

A use is keyed by (member, benefit, visit): using the same benefit for the same visit again is the same
use, answered again, never a second one. The member's row is locked while a use is counted, so two
desks using the last free cleaning at the same moment get one "used" and one 409 (on PostgreSQL the
row lock orders them; SQLite runs one transaction at a time).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.kit.clock import local_date
from services.kit.errors import Conflict, Invalid, NotFound
from services.kit.telemetry import counter
from services.members.models import Member, QuotaUse
from services.members.rules.benefits import BenefitYear, benefit_year
from services.members.rules.programme import Programme

QUOTA_USES = counter("careloop_members_quota_uses_total", "Quota uses by benefit and outcome", ("benefit", "outcome"))


def year_of(programme: Programme, member: Member, zone: ZoneInfo, today: date) -> BenefitYear:
    return benefit_year(programme, local_date(member.enrolled_at, zone), today)


def used_in(session: Session, member_id: uuid.UUID, year: int) -> dict[str, int]:
    """Uses per benefit in a benefit year (undone ones do not count)."""
    rows = session.execute(select(QuotaUse.benefit, func.count()).where(
        QuotaUse.member_id == member_id, QuotaUse.benefit_year == year, QuotaUse.undone_at.is_(None))
        .group_by(QuotaUse.benefit))
    return {benefit: int(count) for benefit, count in rows}


def _allowed(programme: Programme, member: Member, benefit: str) -> int:
    if benefit not in programme.quota_benefits():
        raise Invalid(f"The programme has no quota {benefit!r}.",
                      {"benefit": [f"One of {', '.join(programme.quota_benefits())}."]})
    quotas: dict[str, int] = programme.benefits_of(member.tier)["quotas"]  # type: ignore[assignment]
    return quotas.get(benefit, 0)


@dataclass(frozen=True)
class Standing:
    """A quota use and the member's count for its benefit and benefit year (``QuotaUseSchema`` shows it)."""

    use: QuotaUse
    allowed: int
    used: int

    @property
    def remaining(self) -> int:
        return max(self.allowed - self.used, 0)

    @property
    def state(self) -> str:
        return "undone" if self.use.undone_at else "used"


def _find(session: Session, member_id: uuid.UUID, benefit: str, visit_id: str) -> QuotaUse | None:
    return session.scalars(select(QuotaUse).where(QuotaUse.member_id == member_id, QuotaUse.benefit == benefit,
                                                  QuotaUse.visit_id == visit_id)).first()


def use(session: Session, member: Member, programme: Programme, zone: ZoneInfo, benefit: str, visit_id: str,
        branch: str | None, now: datetime, actor: str) -> Standing:
    """Use one of the member's ``benefit`` for ``visit_id``; 409 when none is left. ``member`` is locked."""
    allowed = _allowed(programme, member, benefit)
    existing = _find(session, member.id, benefit, visit_id)
    if existing is not None and existing.undone_at is None:  # the same use again: answer it again
        return Standing(existing, allowed, used_in(session, member.id, existing.benefit_year).get(benefit, 0))
    if member.status != "active":
        raise Conflict(f"This membership is {member.status}: its benefits cannot be used.")
    year = year_of(programme, member, zone, local_date(now, zone))
    used = used_in(session, member.id, year.label).get(benefit, 0)
    if used >= allowed:
        QUOTA_USES.labels(benefit, "refused").inc()
        what = "does not include" if allowed == 0 else f"has used all {allowed} of"
        raise Conflict(f"The member's {member.tier} tier {what} {benefit.replace('_', ' ')} this benefit year "
                       f"({year.starts_on.isoformat()} to {year.ends_on.isoformat()}).",
                       details={"benefit": benefit, "allowed": allowed, "used": used, "benefit_year": year.label})
    if existing is not None:  # undone before (a cancelled visit), used again for the same visit
        existing.undone_at = existing.undone_by = None
        existing.benefit_year, existing.used_at, existing.used_by, existing.branch = year.label, now, actor, branch
        row = existing
    else:
        row = QuotaUse(member_id=member.id, benefit=benefit, visit_id=visit_id, benefit_year=year.label,
                       branch=branch, used_at=now, used_by=actor)
        session.add(row)
    session.flush()
    QUOTA_USES.labels(benefit, "used").inc()
    return Standing(row, allowed, used + 1)


def undo(session: Session, member: Member, programme: Programme, benefit: str, visit_id: str, now: datetime,
         actor: str) -> Standing:
    """Give back the use of ``benefit`` for ``visit_id`` (the visit was cancelled); undoing twice is one undo."""
    allowed = _allowed(programme, member, benefit)
    existing = _find(session, member.id, benefit, visit_id)
    if existing is None:
        raise NotFound(f"No use of {benefit.replace('_', ' ')} for visit {visit_id}.")
    if existing.undone_at is None:
        existing.undone_at, existing.undone_by = now, actor
        session.flush()
        QUOTA_USES.labels(benefit, "undone").inc()
    return Standing(existing, allowed, used_in(session, member.id, existing.benefit_year).get(benefit, 0))


def undo_for_visit(session: Session, member_id: uuid.UUID, visit_id: str, now: datetime, actor: str) -> int:
    """Give back every use made for a cancelled visit; returns how many were given back."""
    uses = session.scalars(select(QuotaUse).where(QuotaUse.member_id == member_id, QuotaUse.visit_id == visit_id,
                                                  QuotaUse.undone_at.is_(None))).all()
    for row in uses:
        row.undone_at, row.undone_by = now, actor
        QUOTA_USES.labels(row.benefit, "undone").inc()
    return len(uses)


def move(session: Session, from_id: uuid.UUID, to_id: uuid.UUID, ids: list[int] | None = None) -> list[int]:
    """Move quota uses between members (a merge, or its reversal with ``ids``)."""
    query = select(QuotaUse).where(QuotaUse.member_id == from_id)
    if ids is not None:
        query = query.where(QuotaUse.id.in_(ids))
    rows = list(session.scalars(query))
    for row in rows:
        row.member_id = to_id
    return [row.id for row in rows]
