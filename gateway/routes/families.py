"""Family accounts: a contact person (the guardian of minors) and linked members (the members service), the
family's balances and transfers of points and stored value within it (the points service)."""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request

from gateway.http import idempotency_key, route
from gateway.upstream import Upstream
from services.members.schemas import (
    FamilyCreateSchema,
    FamilyHistorySchema,
    FamilyLinkSchema,
    FamilySchema,
    FamilyUnlinkSchema,
)
from services.points.schemas import (
    FamilyBalancesSchema,
    FamilyTransferSchema,
    PointsTransferSchema,
    WalletTransferSchema,
)

TAGS = ("families",)
FAMILY = "/v1/families/<family_id>"


class FamilyRoutes:
    members = Upstream("members")
    points = Upstream("points")

    @route("POST", "/v1/families", "families:manage", summary="Open a family account with its contact person",
           tags=TAGS, body=FamilyCreateSchema, responses={201: FamilySchema, 404: None, 409: None}, idempotent=True)
    def create_family(self, request: Request) -> tuple[int, Any]:
        return 201, self.members.create_family(request.json_body, idempotency_key=idempotency_key(request))

    @route("GET", FAMILY, "families:read", summary="A family: its contact person and members", tags=TAGS,
           responses={200: FamilySchema, 404: None})
    def get_family(self, request: Request, family_id: str) -> Any:
        return self.members.get_family(family_id)

    @route("GET", "/v1/members/<member_id>/family", "families:read", summary="The family a member belongs to",
           tags=TAGS, responses={200: FamilySchema, 404: None})
    def member_family(self, request: Request, member_id: str) -> Any:
        return self.members.member_family(member_id)

    @route("POST", f"{FAMILY}/members", "families:manage", summary="Link a member to a family (audited)",
           tags=TAGS, body=FamilyLinkSchema, responses={200: FamilySchema, 404: None, 409: None}, idempotent=True)
    def link_family_member(self, request: Request, family_id: str) -> Any:
        return self.members.link_family_member(family_id, request.json_body, idempotency_key=idempotency_key(request))

    @route("POST", f"{FAMILY}/members/<member_id>/unlink", "families:manage",
           summary="Take a member out of a family (audited, with the reason)", tags=TAGS, body=FamilyUnlinkSchema,
           responses={200: FamilySchema, 404: None, 409: None}, idempotent=True)
    def unlink_family_member(self, request: Request, family_id: str, member_id: str) -> Any:
        return self.members.unlink_family_member(family_id, member_id, request.json_body,
                                                 idempotency_key=idempotency_key(request))

    @route("GET", f"{FAMILY}/history", "families:read", summary="Who linked and unlinked whom, when and why",
           tags=TAGS, responses={200: FamilyHistorySchema, 404: None})
    def family_history(self, request: Request, family_id: str) -> Any:
        return self.members.family_history(family_id)

    @route("GET", f"{FAMILY}/balances", "families:read", summary="Each family member's points and stored value",
           tags=TAGS, responses={200: FamilyBalancesSchema, 404: None})
    def family_balances(self, request: Request, family_id: str) -> Any:
        return self.points.family_balances(family_id)

    @route("POST", f"{FAMILY}/points-transfers", "families:transfer",
           summary="Move points between members of a family (where the programme allows it)", tags=TAGS,
           body=PointsTransferSchema, responses={201: FamilyTransferSchema, 404: None, 409: None}, idempotent=True)
    def transfer_points(self, request: Request, family_id: str) -> tuple[int, Any]:
        return 201, self.points.transfer_points(family_id, request.json_body, idempotency_key=idempotency_key(request))

    @route("POST", f"{FAMILY}/wallet-transfers", "families:transfer",
           summary="Move stored value between members of a family (where the programme allows it)", tags=TAGS,
           body=WalletTransferSchema, responses={201: FamilyTransferSchema, 404: None, 409: None}, idempotent=True)
    def transfer_stored_value(self, request: Request, family_id: str) -> tuple[int, Any]:
        return 201, self.points.transfer_stored_value(family_id, request.json_body,
                                                      idempotency_key=idempotency_key(request))
