"""What notifications announces: one contract per event (``kit.contracts``), and the words they use.

Other services import this module (and nothing else of notifications) to read its events; notifications'
own modules take the vocabularies below from here, so a word on the wire is defined once.
"""

from __future__ import annotations

import uuid

from marshmallow import fields, validate

from services.kit.contracts import Contracts, Event

EVENTS = Contracts("notifications")

CHANNELS = ("wechat", "line", "sms", "email", "inbox")
JOURNEY_CODES = ("welcome", "tier_upgrade", "tier_review_notice", "points_digest", "points_expiring",
                 "appointment_confirmation", "appointment_reminder", "post_visit_advice", "satisfaction_survey",
                 "recall", "birthday", "festival", "seasonal_tip", "segment_b_monthly", "results_ready", "member_day",
                 "waitlist_offer", "waitlist_gone", "composed")
"""The journeys' codes (``composed``: every message of a journey staff composed through the API, which one in the
delivery's context; what each one sends, when and to whom: ``rules.journeys.JOURNEYS``)."""

_DELIVERY = uuid.UUID("91b0c7d2-0000-4000-8000-000000000001")
_MEMBER = uuid.UUID("91b0c7d2-0000-4000-8000-000000000002")


class _Delivery(Event):
    delivery_id = fields.UUID(required=True, metadata={"description": "Read it with `notifications.get_delivery`."})
    member_id = fields.UUID(required=True)
    journey = fields.String(required=True, validate=validate.OneOf(JOURNEY_CODES))


@EVENTS.event("notification_sent")
class NotificationSent(_Delivery):
    """A provider accepted a message (or it reached the in-app inbox). For metrics and audit; no service
    acts on it. Suppressed and cancelled messages announce nothing (their reason is on the delivery)."""

    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))

    sample = {"delivery_id": _DELIVERY, "member_id": _MEMBER, "journey": "appointment_reminder", "channel": "sms"}


@EVENTS.event("notification_failed")
class NotificationFailed(_Delivery):
    """A message was refused for good, or its retries ran out. For metrics and audit; no service acts on it."""

    channel = fields.String(required=True, allow_none=True, validate=validate.OneOf(CHANNELS), metadata={
        "description": "The channel last tried; null when none was."})
    reason = fields.String(required=True, metadata={"description": "Free text for people."})

    sample = {"delivery_id": _DELIVERY, "member_id": _MEMBER, "journey": "birthday", "channel": None,
              "reason": "gave up after 5 attempts: provider unavailable"}
