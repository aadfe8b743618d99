"""What members announces: one contract per event (``kit.contracts``), and the words they use.

Other services import this module (and nothing else of members) to read members' events; members' own
modules take the vocabularies below from here, so a word on the wire is defined once.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from marshmallow import fields, validate

from services.kit.config import LANGUAGES  # noqa: F401 - one list for the group
from services.kit.contracts import Contracts, Event, UtcTime

EVENTS = Contracts("members")

SOURCES = ("desk", "self_signup", "his", "import")
"""Where an enrolment came from."""
LIFECYCLE_STATUSES = ("active", "frozen", "closed")
"""The statuses ``member_status_changed`` moves between (a merge sets ``merged`` and announces ``member_merged``)."""
STATUS_REASONS = ("member_request", "erasure_request", "dispute", "suspected_fraud", "deceased", "resolved", "other")
DIRECTIONS = ("up", "down")
PATHS = ("spend", "top_up", "points", "visits")
"""The programme's qualifying paths, in the order a tie is reported (also the ``reason`` of an upgrade)."""
TIER_REASONS = (*PATHS, "review", "merge", "manual", "points_purchase", "import")
"""Why a tier changed: the qualifying path of an upgrade, the yearly review, a merge or its reversal, a group
admin, a tier bought with points, the placement on visits an import brought over (records' `visits_imported`)."""
SEGMENTS = ("A", "B", "C")

_MEMBER = uuid.UUID("4d2c9a10-0000-4000-8000-000000000001")
_OTHER = uuid.UUID("4d2c9a10-0000-4000-8000-000000000002")
_MERGE = uuid.UUID("4d2c9a10-0000-4000-8000-000000000003")
_AT = datetime(2026, 3, 5, 2, 30, 0, 123456, tzinfo=UTC)


def _member() -> fields.UUID:
    return fields.UUID(required=True)


def _tier(description: str) -> fields.String:
    return fields.String(required=True, metadata={"description": f"{description} (a tier code of the programme)."})


class Enrolment(Event):
    """What an enrolment says of its member: a ``member_enrolled``, or one member of a ``members_imported``."""

    member_id = _member()
    home_branch = fields.String(required=True, metadata={"description": "Branch code."})
    referrer_id = fields.UUID(required=True, allow_none=True,
                              metadata={"description": "The member whose referral code was used, else null."})
    preferred_language = fields.String(required=True, validate=validate.OneOf(LANGUAGES))
    source = fields.String(required=True, validate=validate.OneOf(SOURCES))
    enrolled_at = UtcTime(required=True)


@EVENTS.event("member_enrolled")
class MemberEnrolled(Enrolment):
    """A member enrolled. Points opens the account and pays the referrer's bonus; notifications welcome
    the member; records opens the "never came" follow-ups. An import's members are `members_imported`."""

    sample = {"member_id": _MEMBER, "home_branch": "SH01", "referrer_id": _OTHER, "preferred_language": "zh-Hans",
              "source": "desk", "enrolled_at": _AT}


@EVENTS.event("members_imported")
class MembersImported(Event):
    """Members an import's batch enrolled (one `members_imported` a `members.enrol_batch` call, instead of a
    `member_enrolled` a row: issue 19), each member what its `member_enrolled` would say. Each consumer applies
    the batch in one transaction, for each member exactly what `member_enrolled` does: points opens the accounts
    and pays the referrers' bonuses; notifications welcome the members; records opens the "never came"
    follow-ups; interfaces delivers a `member_enrolled` a member to partners."""

    members = fields.List(fields.Nested(Enrolment), required=True, validate=validate.Length(min=1),
                          metadata={"description": "The members enrolled, in the batch's order."})

    sample = {"members": [{"member_id": _MEMBER, "home_branch": "SH01", "referrer_id": None,
                           "preferred_language": "zh-Hans", "source": "import", "enrolled_at": _AT},
                          {"member_id": _OTHER, "home_branch": "SH02", "referrer_id": _MEMBER,
                           "preferred_language": "en", "source": "import", "enrolled_at": _AT}]}


def enrolments(event: dict[str, Any]) -> list[dict[str, Any]]:
    """Each member of a loaded ``members_imported`` as its ``member_enrolled`` would say it (the batch's
    ``event_id`` and ``occurred_at`` on each): what a consumer applying enrolments one by one reads."""
    common = {"event_id": event["event_id"], "occurred_at": event["occurred_at"]}
    return [{**common, **member} for member in event["members"]]



@EVENTS.event("member_updated")
class MemberUpdated(Event):
    """A member's details changed (contact, consents, language, home branch...). No service acts on it today:
    notifications read a member's contact when they send."""

    member_id = _member()
    changed = fields.List(fields.String(), required=True, validate=validate.Length(min=1), metadata={
        "description": "The names of the fields that changed, never their values."})

    sample = {"member_id": _MEMBER, "changed": ["email", "consents"]}


@EVENTS.event("member_status_changed")
class MemberStatusChanged(Event):
    """A membership was frozen, reactivated or closed (a merge does not emit it). Points stops earning and
    redeeming while frozen; notifications stop writing to a closed member; records refuses bookings while
    frozen and, on closing, cancels future appointments, follow-ups and recalls (the health record stays)."""

    member_id = _member()
    from_status = fields.String(required=True, validate=validate.OneOf(LIFECYCLE_STATUSES))
    to_status = fields.String(required=True, validate=validate.OneOf(LIFECYCLE_STATUSES))
    reason = fields.String(required=True, validate=validate.OneOf(STATUS_REASONS), metadata={
        "description": "A code; the staff's note stays in members' audit."})

    sample = {"member_id": _MEMBER, "from_status": "active", "to_status": "frozen", "reason": "dispute"}


class _Merge(Event):
    survivor_id = fields.UUID(required=True, metadata={"description": "The member that stays."})
    merged_id = fields.UUID(required=True, metadata={"description": "The duplicate."})
    merge_id = fields.UUID(required=True)


@EVENTS.event("member_merged")
class MemberMerged(_Merge):
    """A duplicate member was merged into the survivor; from now on the duplicate's id names the survivor
    (events and calls naming it apply to the survivor). Points moves the duplicate's lots (dates kept), debt,
    stored value and issued coupons; records moves the clinical record; notifications move their data. The
    same `merge_id` twice is applied once."""

    sample = {"survivor_id": _MEMBER, "merged_id": _OTHER, "merge_id": _MERGE}


@EVENTS.event("tier_changed")
class TierChanged(Event):
    """A member's tier changed. Points uses the new tier's multiplier; notifications congratulate on `up`.
    A refund never lowers a tier mid-year: only the review does (`down`, after a `tier_review_notice`)."""

    member_id = _member()
    from_tier = _tier("The tier held before")
    to_tier = _tier("The tier held now")
    direction = fields.String(required=True, validate=validate.OneOf(DIRECTIONS))
    reason = fields.String(required=True, validate=validate.OneOf(TIER_REASONS), metadata={
        "description": "`spend`/`top_up`/`points`/`visits`: the path that earned an upgrade (after the event "
                       "that qualified, or found by a review); `review`: the yearly review lowered it; `merge`: a "
                       "merge (up) or its reversal (down); `manual`: a group admin; `points_purchase`: bought with "
                       "points (`members.change_tier` called by points); `import`: placed on the history an "
                       "import brought over (`visits_imported`; history is not congratulated)."})
    effective_at = UtcTime(required=True, metadata={
        "description": "When the change took effect; notifications' congratulation is once per member, tier "
                       "and this value as sent (ISO 8601, `Z`, microseconds as produced)."})

    sample = {"member_id": _MEMBER, "from_tier": "silver", "to_tier": "gold", "direction": "up", "reason": "spend",
              "effective_at": _AT}


@EVENTS.event("tier_review_notice")
class TierReviewNotice(Event):
    """The yearly review found the member below their tier: on `effective_on` the tier drops to `next_tier`
    (a `tier_changed` with reason `review`) unless the member earns it again meanwhile (then nothing more
    is announced). Notifications send the notice."""

    member_id = _member()
    current_tier = _tier("The tier held now")
    next_tier = _tier("The tier announced")
    effective_on = fields.Date(required=True, metadata={"description": "A local date of the group."})

    sample = {"member_id": _MEMBER, "current_tier": "gold", "next_tier": "silver", "effective_on": date(2026, 4, 4)}


class Rfm(Event):
    r = fields.Integer(required=True, validate=validate.Range(min=1, max=5), metadata={"description": "Recency."})
    f = fields.Integer(required=True, validate=validate.Range(min=1, max=5), metadata={"description": "Frequency."})
    m = fields.Integer(required=True, validate=validate.Range(min=1, max=5), metadata={"description": "Monetary."})


@EVENTS.event("segment_changed")
class SegmentChanged(Event):
    """The nightly grading changed a member's segment or churn risk (RFM changes alone are not announced;
    a first grading in C without churn risk is not announced either: a member never announced is in C).
    Points filters campaigns by segment (notifications list segment B with `members.segment_members`)."""

    member_id = _member()
    from_segment = fields.String(required=True, allow_none=True, validate=validate.OneOf(SEGMENTS), metadata={
        "description": "Null on the member's first grading."})
    to_segment = fields.String(required=True, validate=validate.OneOf(SEGMENTS))
    rfm = fields.Nested(Rfm, required=True, metadata={"description": "Scores 1-5."})
    churn_risk = fields.Boolean(required=True)

    sample = {"member_id": _MEMBER, "from_segment": "C", "to_segment": "B", "rfm": {"r": 4, "f": 3, "m": 2},
              "churn_risk": False}


@EVENTS.event("member_unmerged")
class MemberUnmerged(_Merge):
    """A merge was reversed (`merge_id` names the `member_merged` being reversed): exactly what that merge
    moved goes back, and the alias goes. Points moves back lots, stored value and coupons (what the survivor
    already spent becomes its debt); records and notifications move back what they moved."""

    sample = {"survivor_id": _MEMBER, "merged_id": _OTHER, "merge_id": _MERGE}
