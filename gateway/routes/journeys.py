"""Composed journeys (notifications): a manager's SOP — trigger, waits, messages, staff tasks, exits — composed,
versioned, activated, paused, retired, previewed and dry-run without code. The shipped journeys that fit
(welcome, tier upgrade, post-visit advice, first-visit survey) are listed here too, as group-wide journeys.

Group admins manage every journey; branch managers those restricted to their own branches (notifications
checks the branches: the gateway only knows the permission). A message campaign is a journey with a schedule
trigger and a segment condition.
"""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request

from gateway.http import idempotency_key, query_args, route
from gateway.upstream import Upstream
from services.notifications.schemas import (
    JourneyDefinitionSchema,
    JourneyDryRunSchema,
    JourneyPageSchema,
    JourneyPreviewRequestSchema,
    JourneyPreviewSchema,
    JourneyQuerySchema,
    JourneySchema,
)

TAGS = ("journeys",)


class JourneyRoutes:
    journeys = Upstream("notifications")

    @route("POST", "/v1/journeys", "journeys:write", tags=TAGS, body=JourneyDefinitionSchema, idempotent=True,
           summary="Compose a journey (in draft, version 1): a trigger (an event with conditions, or a schedule), "
                   "steps (wait, message in four languages, task in a follow-up queue) and exits",
           responses={201: JourneySchema, 403: None})
    def create_journey(self, request: Request) -> tuple[int, Any]:
        return 201, self.journeys.create_journey(request.json_body, idempotency_key=idempotency_key(request))

    @route("GET", "/v1/journeys", "journeys:read", tags=TAGS, query=JourneyQuerySchema,
           summary="Composed journeys, newest first (a branch manager sees those of their own branches)",
           responses={200: JourneyPageSchema})
    def list_journeys(self, request: Request) -> Any:
        return self.journeys.list_journeys(query_args(request))

    @route("GET", "/v1/journeys/<journey_id>", "journeys:read", tags=TAGS,
           summary="A composed journey with every version and its runs by state",
           responses={200: JourneySchema, 404: None})
    def get_journey(self, request: Request, journey_id: str) -> Any:
        return self.journeys.get_journey(journey_id)

    @route("PUT", "/v1/journeys/<journey_id>", "journeys:write", tags=TAGS, body=JourneyDefinitionSchema,
           idempotent=True, summary="Change a journey: a new version (runs already going finish on theirs; an active "
                                    "journey's new version must pass activation's checks)",
           responses={200: JourneySchema, 404: None, 409: None})
    def update_journey(self, request: Request, journey_id: str) -> Any:
        return self.journeys.update_journey(journey_id, request.json_body, idempotency_key=idempotency_key(request))

    @route("POST", "/v1/journeys/<journey_id>/activate", "journeys:write", tags=TAGS, idempotent=True,
           summary="Activate a journey (checked first: 422 names each field that stops it)",
           responses={200: JourneySchema, 404: None, 409: None})
    def activate_journey(self, request: Request, journey_id: str) -> Any:
        return self.journeys.set_journey_state(journey_id, "active", idempotency_key=idempotency_key(request))

    @route("POST", "/v1/journeys/<journey_id>/pause", "journeys:write", tags=TAGS, idempotent=True,
           summary="Pause a journey: no new runs, runs wait where they are until it is active again",
           responses={200: JourneySchema, 404: None, 409: None})
    def pause_journey(self, request: Request, journey_id: str) -> Any:
        return self.journeys.set_journey_state(journey_id, "paused", idempotency_key=idempotency_key(request))

    @route("POST", "/v1/journeys/<journey_id>/retire", "journeys:write", tags=TAGS, idempotent=True,
           summary="Retire a journey for good: its runs end and their messages not sent yet are taken back",
           responses={200: JourneySchema, 404: None, 409: None})
    def retire_journey(self, request: Request, journey_id: str) -> Any:
        return self.journeys.set_journey_state(journey_id, "retired", idempotency_key=idempotency_key(request))

    @route("GET", "/v1/journeys/<journey_id>/dry-run", "journeys:read", tags=TAGS,
           summary="How many members the current version would reach this week, by step, and how it was counted",
           responses={200: JourneyDryRunSchema, 404: None})
    def dry_run_journey(self, request: Request, journey_id: str) -> Any:
        return self.journeys.dry_run_journey(journey_id)

    @route("POST", "/v1/journeys/<journey_id>/preview", "journeys:read", tags=TAGS, body=JourneyPreviewRequestSchema,
           summary="Each message step rendered in the four languages, for a member (as you may see them) or a sample "
                   "member; a coupon shown with its reward's terms and a sample code (nothing is sent or issued)",
           responses={200: JourneyPreviewSchema, 404: None})
    def preview_journey(self, request: Request, journey_id: str) -> Any:
        return self.journeys.preview_journey(journey_id, request.json_body)
