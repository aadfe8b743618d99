"""A member's message preferences: the order of channels and the opt-outs (marketing, service).

Channel consents belong to members (the member agreed to be contacted by SMS, e-mail, WeChat, LINE,
and to marketing at all); notifications reads them at send time and never keeps a copy. What lives here
is what only concerns messages: which channel first, "no marketing" / "no service messages", and "do not
contact" (no marketing and no outreach such as recalls; the reactivation list leaves the member out).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from services.notifications.models import Preference
from services.notifications.rules.sending import Preferences


def load(session: Session, member_id: uuid.UUID) -> Preferences:
    row = session.get(Preference, member_id)
    return as_rules(row)


def as_rules(row: Preference | None) -> Preferences:
    if row is None:
        return Preferences()
    channels = tuple(json.loads(row.channels)) if row.channels else None
    return Preferences(channels=channels, marketing_opt_out=row.marketing_opt_out,
                       service_opt_out=row.service_opt_out, do_not_contact=bool(row.do_not_contact))


def change(session: Session, member_id: uuid.UUID, changes: dict[str, Any], by: str, now: datetime) -> Preference:
    """Apply the given fields (``channels`` None: back to the group's default order)."""
    row = session.get(Preference, member_id, with_for_update=True)
    if row is None:
        row = Preference(member_id=member_id, channels=None, marketing_opt_out=False, service_opt_out=False,
                         do_not_contact=False, updated_at=now)
        session.add(row)
    if "channels" in changes:
        row.channels = json.dumps(list(changes["channels"])) if changes["channels"] else None
    for flag in ("marketing_opt_out", "service_opt_out", "do_not_contact"):
        if flag in changes:
            setattr(row, flag, bool(changes[flag]))
    row.updated_at, row.updated_by = now, by[:160]
    return row


def forget(session: Session, member_id: uuid.UUID) -> None:
    session.execute(delete(Preference).where(Preference.member_id == member_id))


def copy_to_survivor(session: Session, from_id: uuid.UUID, to_id: uuid.UUID) -> None:
    """After a merge: the survivor keeps its own choices, or takes the merged member's (which stay, for an
    unmerge)."""
    merged = session.get(Preference, from_id)
    if merged is None or session.get(Preference, to_id) is not None:
        return
    session.add(Preference(member_id=to_id, channels=merged.channels, marketing_opt_out=merged.marketing_opt_out,
                           service_opt_out=merged.service_opt_out, do_not_contact=merged.do_not_contact,
                           updated_at=merged.updated_at,
                           updated_by=merged.updated_by))


@dataclass(frozen=True)
class MemberPreferences:
    """A member's choices as they apply (``schemas.NotificationPreferencesSchema``): the group's order where
    the member chose none, and the consents members keeps."""

    member_id: str
    channels: tuple[str, ...] | None
    effective_channels: tuple[str, ...]
    marketing_opt_out: bool
    service_opt_out: bool
    do_not_contact: bool
    consents: dict[str, bool] | None
    updated_at: datetime | None


def of(member: dict[str, Any], row: Preference | None, default_order: tuple[str, ...]) -> MemberPreferences:
    """``member`` as members answers it (its id and consents), with its row here (None: nothing chosen yet)."""
    chosen = as_rules(row)
    return MemberPreferences(member_id=member["id"], channels=chosen.channels,
                             effective_channels=chosen.channels or default_order,
                             marketing_opt_out=chosen.marketing_opt_out, service_opt_out=chosen.service_opt_out,
                             do_not_contact=chosen.do_not_contact, consents=member.get("consents"), updated_at=row.updated_at if row is not None else None)

