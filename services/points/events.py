"""What points announces: one contract per event (``kit.contracts``), and the words they use.

Other services import this module (and nothing else of points) to read points' events; points' own
modules take the vocabularies below from here, so a word on the wire is defined once.

Postings, lots and wallet postings are numbered by the database: their ids travel as strings of digits
(``"1042"``), as they do in points' answers.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from marshmallow import fields, validate

from services.kit.contracts import Contracts, Event, UtcTime

EVENTS = Contracts("points")

EARN_RULES = ("spend", "visit", "referral", "activity", "review", "interaction", "campaign", "adjust")
"""The rule a ``points_earned`` was earned by (what the earning rules pay, and a manager's adjustment)."""
REDEMPTION_KINDS = ("reward", "cash_deduction", "tier_upgrade")
COUPON_SOURCES = ("redemption", "birthday", "festival", "campaign", "manual")
"""Where a coupon came from: a reward bought with points, or issued (``points.issue_coupon``) for the rest."""

_MEMBER = uuid.UUID("7a3e5b20-0000-4000-8000-000000000001")
_REDEMPTION = uuid.UUID("7a3e5b20-0000-4000-8000-000000000002")
_REWARD = uuid.UUID("7a3e5b20-0000-4000-8000-000000000003")
_AT = datetime(2026, 3, 5, 2, 30, 0, 250000, tzinfo=UTC)


def _member() -> fields.UUID:
    return fields.UUID(required=True, metadata={"description": "The member whose account it is."})


def _number(description: str) -> fields.String:
    return fields.String(required=True, validate=validate.Regexp(r"^[0-9]+$"),
                         metadata={"description": description})


def _points(description: str) -> fields.Integer:
    return fields.Integer(required=True, validate=validate.Range(min=1), metadata={"description": description})


def _currency(**kwargs: object) -> fields.String:
    return fields.String(required=True, validate=validate.Regexp(r"^[A-Z]{3}$"), **kwargs)


@EVENTS.event("points_earned")
class PointsEarned(Event):
    """Points were earned (a referral, an activity, a survey, an online interaction, a campaign, a manager's
    adjustment, a visit's points released after its refund window; a completed visit's earn itself is
    `visit_points_earned`). Members count them for the 12-month points path of tiers; notifications put
    them in the daily digest. Points moved by a merge announce nothing."""

    member_id = _member()
    posting_id = _number("The earn posting.")
    points = _points("Points credited.")
    rule = fields.String(required=True, validate=validate.OneOf(EARN_RULES))
    source_ref = fields.String(required=True, metadata={
        "description": "What earned them: the visit id, the referred member's id, the feedback id, the "
                       "activity's or interaction's reference."})
    branch = fields.String(required=True, allow_none=True, metadata={"description": "Branch code, if any."})
    earned_at = UtcTime(required=True)
    expires_on = fields.Date(required=True, metadata={"description": "The last local day the points can be spent."})

    sample = {"member_id": _MEMBER, "posting_id": "1042", "points": 250, "rule": "spend",
              "source_ref": "6f1c2a4e-0000-4000-8000-000000000002", "branch": "SH01", "earned_at": _AT,
              "expires_on": date(2028, 12, 31)}


class EarnedLine(Event):
    posting_id = _number("The earn posting.")
    points = _points("Points credited.")
    rule = fields.String(required=True, validate=validate.OneOf(EARN_RULES))


@EVENTS.event("visit_points_earned")
class VisitPointsEarned(Event):
    """A completed visit earned a member points: every line the visit posted to that member at once (spend, visit,
    campaign; the referrer's share is an event of the referrer's), in one event instead of a `points_earned` a line,
    so that each consumer handles a visit's earn once (issue 17). Each line is what a `points_earned` says of its
    posting, with the fields below in common; interfaces still delivers each line to partners as a
    `points_earned`. Lines held for a refund window are announced as `points_earned` when released."""

    member_id = _member()
    visit_id = fields.UUID(required=True, metadata={"description": "The visit (the lines' `source_ref`)."})
    branch = fields.String(required=True, allow_none=True, metadata={"description": "Branch code, if any."})
    earned_at = UtcTime(required=True)
    expires_on = fields.Date(required=True, metadata={"description": "The last local day the points can be spent."})
    postings = fields.List(fields.Nested(EarnedLine), required=True, validate=validate.Length(min=1),
                           metadata={"description": "The earn postings, in the order they were posted."})

    sample = {"member_id": _MEMBER, "visit_id": uuid.UUID("6f1c2a4e-0000-4000-8000-000000000002"),
              "branch": "SH01", "earned_at": _AT, "expires_on": date(2028, 12, 31),
              "postings": [{"posting_id": "1042", "points": 250, "rule": "spend"},
                           {"posting_id": "1043", "points": 50, "rule": "visit"}]}


def earned_lines(event: dict[str, Any]) -> list[dict[str, Any]]:
    """Each line of a loaded ``visit_points_earned`` as a ``points_earned`` payload says it (the fields in common
    repeated, the visit as ``source_ref``): what a consumer keeping postings one by one reads, and what partners
    receive."""
    common = {"member_id": event["member_id"], "source_ref": str(event["visit_id"]), "branch": event["branch"],
              "earned_at": event["earned_at"], "expires_on": event["expires_on"]}
    return [{**common, **line} for line in event["postings"]]


@EVENTS.event("points_reversed")
class PointsReversed(Event):
    """Points a visit earned were taken back after a refund or a cancellation (in proportion to what was
    refunded; a debt where they were spent). Members subtract them from the 12-month points."""

    member_id = _member()
    posting_id = _number("The reversal posting.")
    reverses_posting_id = _number("The earn posting it takes back from.")
    points = _points("Points taken back (positive).")
    reason = fields.String(required=True, metadata={"description": "Free text for people."})
    source_ref = fields.String(required=True, metadata={"description": "The visit id."})

    sample = {"member_id": _MEMBER, "posting_id": "1077", "reverses_posting_id": "1042", "points": 250,
              "reason": "visit refunded in full", "source_ref": "6f1c2a4e-0000-4000-8000-000000000002"}


@EVENTS.event("points_redeemed")
class PointsRedeemed(Event):
    """Points were spent on a reward of the catalogue or taken off a bill (cash deduction). No service acts on
    it today."""

    member_id = _member()
    posting_id = _number("The spend posting.")
    points = _points("Points spent (positive).")
    branch = fields.String(required=True, metadata={"description": "Branch code."})
    redemption_id = fields.UUID(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(REDEMPTION_KINDS))
    reward_id = fields.UUID(required=True, allow_none=True, metadata={"description": "For a reward, else null."})
    amount_minor = fields.Integer(required=True, allow_none=True, validate=validate.Range(min=0), metadata={
        "description": "For a cash deduction: what the points took off the bill; else null."})
    currency = _currency(allow_none=True, metadata={"description": "For a cash deduction, else null."})
    bill_id = fields.String(required=True, allow_none=True, metadata={
        "description": "For a cash deduction: the HIS's bill; else null."})

    sample = {"member_id": _MEMBER, "posting_id": "1090", "points": 5000, "branch": "SH01",
              "redemption_id": _REDEMPTION, "kind": "cash_deduction", "reward_id": None, "amount_minor": 5000,
              "currency": "CNY", "bill_id": "HIS-2026-0001"}


@EVENTS.event("points_expiring")
class PointsExpiring(Event):
    """A lot of points will expire soon (announced once per lot, the programme's warning days ahead, 30 by
    default). Notifications warn the member."""

    member_id = _member()
    lot_id = _number("The lot.")
    points = _points("Points left in the lot.")
    expires_on = fields.Date(required=True, metadata={"description": "The last local day they can be spent."})

    sample = {"member_id": _MEMBER, "lot_id": "388", "points": 1200, "expires_on": date(2026, 12, 31)}


@EVENTS.event("points_expired")
class PointsExpired(Event):
    """Points expired unspent (by the nightly job, or found past their date by a spend or a cancellation). No
    service acts on it today (notifications warn before, on `points_expiring`)."""

    member_id = _member()
    posting_id = _number("The expiry posting.")
    points = _points("Points expired (positive).")

    sample = {"member_id": _MEMBER, "posting_id": "2001", "points": 60}


@EVENTS.event("topped_up")
class ToppedUp(Event):
    """Money was paid onto the member's stored-value card. Members count the largest single top-up for
    tiers (never the bonus)."""

    member_id = _member()
    topup_id = _number("The wallet posting.")
    amount_minor = fields.Integer(required=True, validate=validate.Range(min=0),
                                  metadata={"description": "Money paid in (the principal)."})
    bonus_minor = fields.Integer(required=True, validate=validate.Range(min=0),
                                 metadata={"description": "Bonus value given with it (kept apart from the principal)."})
    currency = _currency()
    branch = fields.String(required=True, metadata={"description": "Branch code."})

    sample = {"member_id": _MEMBER, "topup_id": "77", "amount_minor": 100000, "bonus_minor": 10000,
              "currency": "CNY", "branch": "SH01"}


@EVENTS.event("coupon_issued")
class CouponIssued(Event):
    """A coupon was given to a member (a reward bought with points, a birthday, a festival, a campaign, by
    hand). It takes either a value or a rate off: both keys are present, the other null. No service acts on it
    today (the birthday message shows the coupon from `points.issue_coupon`'s answer)."""

    member_id = _member()
    coupon_id = fields.UUID(required=True)
    source = fields.String(required=True, validate=validate.OneOf(COUPON_SOURCES))
    category = fields.String(required=True, allow_none=True, metadata={
        "description": "The service category it applies to; null for the whole bill."})
    value_minor = fields.Integer(required=True, allow_none=True, validate=validate.Range(min=1),
                                 metadata={"description": "Money off, or null for a rate."})
    rate_bp = fields.Integer(required=True, allow_none=True, validate=validate.Range(min=1, max=10_000),
                             metadata={"description": "Basis points off (500 = 5 %), or null for a value."})
    currency = _currency()
    title = fields.String(required=True, metadata={"description": "In the member's language, for people."})
    valid_from = fields.Date(required=True, metadata={"description": "First local day it can be used."})
    valid_until = fields.Date(required=True, metadata={"description": "Last local day it can be used."})

    sample = {"member_id": _MEMBER, "coupon_id": uuid.UUID("7a3e5b20-0000-4000-8000-000000000004"),
              "source": "birthday", "category": "cleaning", "value_minor": 5000, "rate_bp": None, "currency": "CNY",
              "title": "Birthday gift", "valid_from": date(2026, 11, 23), "valid_until": date(2026, 12, 23)}


@EVENTS.event("redemption_cancelled")
class RedemptionCancelled(Event):
    """A pending redemption was cancelled: its points went back to the lots they came from (points whose
    lot expired meanwhile come back expired) and a reward back to stock. No service acts on it today."""

    member_id = _member()
    redemption_id = fields.UUID(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(REDEMPTION_KINDS))
    posting_id = _number("The posting that gave the points back.")
    points = _points("Points returned.")
    reward_id = fields.UUID(required=True, allow_none=True, metadata={"description": "For a reward, else null."})

    sample = {"member_id": _MEMBER, "redemption_id": _REDEMPTION, "kind": "reward", "posting_id": "1101",
              "points": 3000, "reward_id": _REWARD}
