"""The earning rules changed through the API: a versioned override of the programme file's earning fields.

Only the fields of ``FIELDS`` (what a visit, an activity, a referral, a review and an online interaction earn)
can be set here; expiry, redemption and stored value stay in the programme file. A change stores the next
version (``points_earning_rules``: the fields it sets, who, when) and is checked by the file's own parsing
(``rules.programme.parse_programme``), so a 422 names the body's field as the file would. A field a version
does not set keeps the file's value; an empty version gives the file's rules back.

Changes queue on the campaigns' stamp row (``campaigns._changing``) and move its stamp, so the earn path's
cache (``campaigns.in_force``, which applies these rules before merging the campaigns) picks a change up on
every replica for everything earned after the change answered.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.kit.errors import Conflict, Invalid
from services.points import campaigns
from services.points.models import EarningRulesVersion
from services.points.rules.programme import Programme, parse_programme, plain

FIELDS = ("spend_points_per_unit", "tier_multipliers", "visit_points", "visit_kinds", "activity_points",
          "activity_kinds", "referral_enrolment_points", "referral_first_paid_visit_points", "review_points",
          "interaction_points", "interaction_daily_cap")
"""The body's names (the programme file's): ``tier_multipliers`` is ``Programme.tier_multipliers_bp``."""
_ATTRIBUTE = {"tier_multipliers": "tier_multipliers_bp"}
_LATEST = select(EarningRulesVersion).order_by(EarningRulesVersion.version.desc()).limit(1)


def parse(raw: Any, base: Programme) -> dict[str, Any]:
    """The fields ``raw`` sets, checked by the programme file's parsing and in its stored form (multipliers in
    basis points, review points completed from ``base``); ``Invalid`` naming the first bad field."""
    if not isinstance(raw, dict):
        raise Invalid("Send the earning rules as an object.", {"rules": ["Must be an object."]})
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise Invalid(f"{unknown[0]} cannot be changed here: only the earning rules can "
                      f"({', '.join(FIELDS)}); the rest is set in the programme file.",
                      {unknown[0]: ["Not an earning rule that can be changed here."]})
    parsed = parse_programme(raw, base)
    return {name: plain(getattr(parsed, _ATTRIBUTE.get(name, name))) for name in FIELDS if name in raw}


def apply(base: Programme, terms: dict[str, Any] | None) -> Programme:
    """``base`` with a stored version's fields over it."""
    return parse_programme(terms, base) if terms else base


def stored_terms(session: Session) -> dict[str, Any] | None:
    """The fields of the version in force (None: nothing stored, the file's rules alone)."""
    row = session.scalars(_LATEST).first()
    return json.loads(row.terms) if row is not None else None


def change(session: Session, base: Programme, raw: Any, expected_version: int, now: datetime,
           actor: str) -> EarningRulesVersion:
    """Store the next version: ``raw``'s fields over the file's; ``Conflict`` when ``expected_version`` is not
    the version in force (0: none stored), i.e. someone changed the rules since they were read."""
    terms = parse(raw, base)
    campaigns._changing(session, now)  # one change at a time, and every cache sees it once it commits
    latest = session.scalars(_LATEST).first()
    version = latest.version if latest is not None else 0
    if expected_version != version:
        raise Conflict(f"The earning rules changed meanwhile (now version {version}, you had {expected_version}); "
                       "reload them and edit again.", details={"version": version})
    row = EarningRulesVersion(version=version + 1, terms=json.dumps(terms), created_at=now, created_by=actor)
    session.add(row)
    session.flush()
    return row


def describe(session: Session, base: Programme) -> dict[str, Any]:
    """The earning rules in force (the file's with the stored version over it), that version and every version
    stored, oldest first, with who stored it."""
    versions = list(session.scalars(select(EarningRulesVersion).order_by(EarningRulesVersion.version)))
    latest = versions[-1] if versions else None
    stored = json.loads(latest.terms) if latest is not None else {}
    in_force = apply(base, stored)
    return {
        "version": latest.version if latest is not None else 0,
        "source": "stored" if stored else "file",
        "rules": {name: plain(getattr(in_force, _ATTRIBUTE.get(name, name))) for name in FIELDS},
        "stored": sorted(stored),
        "currency_minor_per_unit": base.currency_minor_per_unit,
        "updated_at": latest.created_at if latest is not None else None,
        "updated_by": latest.created_by if latest is not None else None,
        "versions": [{"version": v.version, "terms": json.loads(v.terms), "created_at": v.created_at,
                      "created_by": v.created_by} for v in versions],
    }
