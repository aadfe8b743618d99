"""Notifications: preview a message, send one, follow or cancel it; a member's preferences and inbox.

A member's message history stays at ``GET /v1/members/<id>/deliveries`` (``routes/members.py``); one
message with every step it went through is ``GET /v1/notifications/<id>``.
"""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request

from gateway.http import idempotency_key, query_args, route
from gateway.upstream import Upstream
from services.kit.errors import Invalid
from services.notifications.schemas import (
    DeliveryDetailSchema,
    DeliverySchema,
    FeedbackAlertsSchema,
    FestivalCalendarSchema,
    InboxMessageSchema,
    InboxPageSchema,
    NotificationPreferencesChangeSchema,
    NotificationPreferencesSchema,
    NotificationPreviewRequestSchema,
    NotificationPreviewSchema,
    ReactivationItemSchema,
    ReactivationListSchema,
    ReactivationQuerySchema,
    ScheduleMessageSchema,
)

TAGS = ("notifications",)


def _flag(value: Any, name: str) -> bool:
    if value in (None, "", "false", "0"):
        return False
    if value in ("true", "1"):
        return True
    raise Invalid(f"{name} must be true or false.", {name: ["Not a boolean."]})


class NotificationRoutes:
    notifications = Upstream("notifications")

    @route("POST", "/v1/notifications/preview", "notifications:preview", tags=TAGS,
           summary="A journey's message as it would go out (for a member, or with sample facts)",
           body=NotificationPreviewRequestSchema, responses={200: NotificationPreviewSchema, 404: None})
    def preview_notification(self, request: Request) -> Any:
        return self.notifications.preview(request.json_body)

    @route("POST", "/v1/notifications", "notifications:send", tags=TAGS,
           summary="Send a member a message (results ready, member day): queued, quiet hours and consents apply",
           body=ScheduleMessageSchema, responses={201: DeliverySchema, 404: None}, idempotent=True)
    def schedule_notification(self, request: Request) -> tuple[int, Any]:
        return 201, self.notifications.schedule(request.json_body, idempotency_key=idempotency_key(request))

    @route("GET", "/v1/feedback/<feedback_id>/alerts", "complaints:handle", tags=TAGS,
           summary="Whether the branch's managers were alerted about this feedback, by which channel, and when",
           responses={200: FeedbackAlertsSchema})
    def feedback_alerts(self, request: Request, feedback_id: str) -> Any:
        return self.notifications.feedback_alerts(feedback_id)

    @route("GET", "/v1/notifications/<delivery_id>", "notifications:read", tags=TAGS,
           summary="One message: its state, why, and every step it went through",
           responses={200: DeliveryDetailSchema, 404: None})
    def get_notification(self, request: Request, delivery_id: str) -> Any:
        return self.notifications.get_delivery(delivery_id)

    @route("POST", "/v1/notifications/<delivery_id>/cancel", "notifications:send", tags=TAGS,
           summary='Cancel a message not sent yet (optional body {"reason": "..."})',
           responses={200: DeliverySchema, 404: None, 422: None})
    def cancel_notification(self, request: Request, delivery_id: str) -> Any:
        return self.notifications.cancel(delivery_id, request.json_body or {})

    @route("GET", "/v1/notifications/festivals/<year>", "notifications:read", tags=TAGS,
           summary="The festival dates of a year (lunar festivals resolved) and the season-tip days",
           responses={200: FestivalCalendarSchema})
    def festival_calendar(self, request: Request, year: str) -> Any:
        if not year.isdigit():
            raise Invalid("The year is a number, e.g. 2027.", {"year": ["Not a year."]})
        return self.notifications.festivals(int(year))

    @route("GET", "/v1/members/<member_id>/notification-preferences", "notifications:preferences", tags=TAGS,
           summary="A member's channel order, opt-outs and consents",
           responses={200: NotificationPreferencesSchema, 404: None})
    def get_notification_preferences(self, request: Request, member_id: str) -> Any:
        return self.notifications.get_preferences(member_id)

    @route("PUT", "/v1/members/<member_id>/notification-preferences", "notifications:preferences", tags=TAGS,
           summary="Change a member's channel order or opt-outs (consents are changed on the member)",
           body=NotificationPreferencesChangeSchema, responses={200: NotificationPreferencesSchema, 404: None},
           idempotent=True)
    def set_notification_preferences(self, request: Request, member_id: str) -> Any:
        return self.notifications.set_preferences(member_id, request.json_body,
                                                  idempotency_key=idempotency_key(request))

    @route("GET", "/v1/members/<member_id>/inbox", "notifications:inbox", tags=TAGS,
           summary="The member's in-app inbox, newest first (unread_only=true for unread)",
           responses={200: InboxPageSchema})
    def member_inbox(self, request: Request, member_id: str) -> Any:
        args = query_args(request)
        return self.notifications.inbox(member_id, limit=args.get("limit"), cursor=args.get("cursor"),
                                        unread_only=_flag(args.get("unread_only"), "unread_only"))

    @route("POST", "/v1/members/<member_id>/inbox/<message_id>/read", "notifications:inbox", tags=TAGS,
           summary="Mark an inbox message read", responses={200: InboxMessageSchema, 404: None})
    def read_inbox_message(self, request: Request, member_id: str, message_id: str) -> Any:
        return self.notifications.mark_read(member_id, message_id)

    @route("GET", "/v1/recalls/reactivation", "recalls:reactivation", tags=TAGS, query=ReactivationQuerySchema,
           summary="A branch's recall reactivation list: unanswered recalls to call (not do-not-contact, under the "
                   "contact cap, nothing booked)", responses={200: ReactivationListSchema})
    def reactivation_list(self, request: Request) -> Any:
        return self.notifications.reactivation_list(query_args(request))

    @route("POST", "/v1/recalls/<recall_id>/reactivation-contacts", "recalls:reactivation", tags=TAGS,
           summary="Record a call to a member of the reactivation list (409 at the contact cap or do-not-contact)",
           responses={200: ReactivationItemSchema, 404: None, 409: None}, idempotent=True)
    def record_reactivation(self, request: Request, recall_id: str) -> Any:
        return self.notifications.record_reactivation(recall_id, idempotency_key=idempotency_key(request))
