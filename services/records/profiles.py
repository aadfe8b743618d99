"""Health profiles: medical history, allergies, family history, medication and notes, each field
encrypted at rest, every saved version kept (whole, encrypted) as a revision."""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.kit.caller import Identity
from services.kit.errors import Conflict
from services.kit.paging import keyset_page
from services.records.models import HealthProfile, HealthProfileRevision, Patient

LIST_FIELDS = ("medical_history", "allergies", "family_history", "medication")
FIELDS = (*LIST_FIELDS, "notes")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"),
                      default=lambda v: v.isoformat() if isinstance(v, date) else str(v))


def contents(profile: HealthProfile | None) -> dict[str, Any]:
    if profile is None:
        return {**{name: [] for name in LIST_FIELDS}, "notes": None}
    contents: dict[str, Any] = {name: json.loads(getattr(profile, name) or "[]") for name in LIST_FIELDS}
    contents["notes"] = profile.notes
    return contents


def read(session: Session, member_id: uuid.UUID) -> HealthProfile:
    """The member's profile (for ``HealthProfileSchema``); an empty one, version 0, never stored, before the first."""
    return session.get(HealthProfile, member_id) or HealthProfile(member_id=member_id, version=0)


def save(session: Session, patient: Patient, changes: dict[str, Any], caller: Identity,
         now: datetime) -> tuple[HealthProfile, list[str]]:
    """Apply ``changes`` (whole fields); the new profile and the names of the fields that changed."""
    profile = session.scalars(select(HealthProfile).where(HealthProfile.member_id == patient.member_id)
                              .with_for_update()).first()
    current = profile.version if profile else 0
    expected = changes.get("expected_version")
    if expected is not None and expected != current:
        raise Conflict(f"The health profile changed since you read it (version {current}, you had {expected}); "
                       "read it again and redo your change.", details={"version": current})
    before = contents(profile)
    after = dict(before)
    for name in FIELDS:
        if name in changes:
            after[name] = json.loads(_json(changes[name])) if name in LIST_FIELDS else changes[name]
    changed = [name for name in FIELDS if after[name] != before[name]]
    if not changed:
        return profile or read(session, patient.member_id), []
    if profile is None:
        profile = HealthProfile(member_id=patient.member_id, version=0)
        session.add(profile)
    for name in changed:
        setattr(profile, name, _json(after[name]) if name in LIST_FIELDS else after[name])
    profile.version = current + 1
    profile.updated_at, profile.updated_by = now, caller.subject
    session.add(HealthProfileRevision(id=uuid.uuid4(), member_id=patient.member_id, version=profile.version,
                                      snapshot=_json(after), changed=",".join(changed), changed_at=now,
                                      changed_by=caller.subject, changed_by_role=caller.role))
    return profile, changed


def history(session: Session, member_id: uuid.UUID, limit: int, cursor: str | None) -> dict[str, Any]:
    """Every saved version, newest first, each whole."""
    query = select(HealthProfileRevision).where(HealthProfileRevision.member_id == member_id)
    rows, next_cursor = keyset_page(session, query, HealthProfileRevision.changed_at, HealthProfileRevision.id,
                                    limit, cursor, descending=True)
    return {"items": rows, "next_cursor": next_cursor}
