"""The waitlist (records): patients waiting for an earlier slot, and the cancelled slots offered to them.

A cancelled appointment's slot is offered to the first matching waiting patients (notifications sends each
offer); the first to accept gets it, the others are answered 409 and told it is gone.
"""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request

from gateway.http import idempotency_key, query_args, route
from gateway.upstream import Upstream
from services.records.schemas import (
    WaitlistAcceptedSchema,
    WaitlistEntryListSchema,
    WaitlistEntrySchema,
    WaitlistJoinSchema,
    WaitlistQuerySchema,
)

TAGS = ("appointments",)


class WaitlistRoutes:
    waitlist = Upstream("records")

    @route("POST", "/v1/waitlist", "appointments:write", tags=TAGS, body=WaitlistJoinSchema, idempotent=True,
           summary="Put a patient on a branch's waitlist (a doctor or any, a window of days)",
           responses={201: WaitlistEntrySchema, 404: None})
    def join_waitlist(self, request: Request) -> tuple[int, Any]:
        return 201, self.waitlist.join_waitlist(request.json_body, idempotency_key=idempotency_key(request))

    @route("GET", "/v1/waitlist", "appointments:read", tags=TAGS, query=WaitlistQuerySchema,
           summary="A branch's waitlist, oldest first (waiting patients unless status= says otherwise)",
           responses={200: WaitlistEntryListSchema})
    def list_waitlist(self, request: Request) -> Any:
        return self.waitlist.list_waitlist(query_args(request, integers=()))

    @route("POST", "/v1/waitlist/<entry_id>/withdraw", "appointments:write", tags=TAGS,
           summary="Take a patient off the waitlist", responses={200: WaitlistEntrySchema, 404: None})
    def withdraw_waitlist(self, request: Request, entry_id: str) -> Any:
        return self.waitlist.withdraw_waitlist(entry_id)

    @route("POST", "/v1/waitlist/offers/<offer_id>/accept", "appointments:write", tags=TAGS, idempotent=True,
           summary="The patient takes an offered slot: booked if first, else 409 (another patient took it)",
           responses={200: WaitlistAcceptedSchema, 404: None, 409: None})
    def accept_waitlist_offer(self, request: Request, offer_id: str) -> Any:
        return self.waitlist.accept_waitlist_offer(offer_id, idempotency_key=idempotency_key(request))
