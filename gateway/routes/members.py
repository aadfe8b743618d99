"""Members: enrol, find, read, change; and what was sent to a member."""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request

from gateway.http import idempotency_key, query_args, route
from gateway.upstream import Upstream
from services.members.schemas import (
    EnrolmentSchema,
    FindMembersSchema,
    MemberChangesSchema,
    MemberPageSchema,
    MemberSchema,
)
from services.notifications.schemas import DeliveryPageSchema

TAGS = ("members",)


class MemberRoutes:
    members = Upstream("members")
    notifications = Upstream("notifications")

    @route("POST", "/v1/members", "members:enrol", summary="Enrol a member", tags=TAGS,
           body=EnrolmentSchema, responses={201: MemberSchema, 409: None}, idempotent=True)
    def enrol_member(self, request: Request) -> tuple[int, Any]:
        return 201, self.members.enrol(request.json_body, idempotency_key=idempotency_key(request))

    @route("GET", "/v1/members", "members:read", summary="Find members by phone, card, ID number or name",
           tags=TAGS, query=FindMembersSchema, responses={200: MemberPageSchema})
    def find_members(self, request: Request) -> Any:
        return self.members.find_members(query_args(request))

    @route("GET", "/v1/members/<member_id>", "members:read", summary="Read a member", tags=TAGS,
           responses={200: MemberSchema, 404: None})
    def get_member(self, request: Request, member_id: str) -> Any:
        return self.members.get_member(member_id)

    @route("PATCH", "/v1/members/<member_id>", "members:update", summary="Change a member's details",
           tags=TAGS, body=MemberChangesSchema, responses={200: MemberSchema, 404: None, 409: None},
           idempotent=True)
    def update_member(self, request: Request, member_id: str) -> Any:
        return self.members.update_member(member_id, request.json_body, idempotency_key=idempotency_key(request))

    @route("GET", "/v1/members/<member_id>/deliveries", "notifications:read",
           summary="Messages sent (or queued, or suppressed) to a member", tags=("notifications",),
           responses={200: DeliveryPageSchema})
    def member_deliveries(self, request: Request, member_id: str) -> Any:
        args = query_args(request)
        return self.notifications.deliveries(member_id, limit=args.get("limit"), cursor=args.get("cursor"))
