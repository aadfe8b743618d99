"""Members: enrol, find, read, change; tiers, benefits, segments, merges and lifecycle; what was sent."""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request

from gateway.http import idempotency_key, query_args, route
from gateway.upstream import Upstream
from services.members.schemas import (
    BenefitsSchema,
    EnrolmentSchema,
    FindMembersSchema,
    IdentifierListSchema,
    IdentifiersChangeSchema,
    IdentifierSchema,
    ManualTierSchema,
    MemberChangesSchema,
    MemberPageSchema,
    MemberSchema,
    MemberStatusChangeSchema,
    MergeRequestSchema,
    MergeReversalSchema,
    MergeSchema,
    PriceRequestSchema,
    PriceSchema,
    ProgrammeChangeSchema,
    ProgrammeInForceSchema,
    ProgrammePreviewSchema,
    QuotaUndoRequestSchema,
    QuotaUseRequestSchema,
    QuotaUseSchema,
    SegmentPageSchema,
    SegmentQuerySchema,
    TierHistoryPageSchema,
    TierStatusSchema,
)
from services.notifications.schemas import DeliveryPageSchema

TAGS = ("members",)
TIERS = ("tiers and benefits",)


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

    @route("GET", "/v1/members/by-identifier", "members:read", tags=TAGS, query=IdentifierSchema,
           summary="The member an identifier names (a HIS's MRN under its system URI, or the card number under "
                   "the group's card system)", responses={200: MemberSchema, 404: None})
    def member_by_identifier(self, request: Request) -> Any:
        return self.members.find_by_identifier(query_args(request, integers=()))

    @route("GET", "/v1/members/<member_id>/identifiers", "members:read", tags=TAGS,
           summary="A member's identifiers: the card number first, then other systems' (MRNs)",
           responses={200: IdentifierListSchema, 404: None})
    def member_identifiers(self, request: Request, member_id: str) -> Any:
        return self.members.identifiers(member_id)

    @route("POST", "/v1/members/<member_id>/identifiers", "members:update", tags=TAGS, body=IdentifiersChangeSchema,
           summary="Give a member identifiers of other systems (one another member holds: 409 naming it)",
           responses={200: IdentifierListSchema, 404: None, 409: None}, idempotent=True)
    def add_member_identifiers(self, request: Request, member_id: str) -> Any:
        return self.members.add_identifiers(member_id, request.json_body, idempotency_key=idempotency_key(request))

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

    # --- tiers ----------------------------------------------------------------------------------------

    @route("GET", "/v1/members/<member_id>/tier", "members:read", tags=TIERS, responses={200: TierStatusSchema},
           summary="A member's tier, the 12 months counted, what the next tier needs, any review notice")
    def member_tier(self, request: Request, member_id: str) -> Any:
        return self.members.tier(member_id)

    @route("GET", "/v1/members/<member_id>/tier-history", "members:read", tags=TIERS,
           summary="Every change of a member's tier, newest first", responses={200: TierHistoryPageSchema})
    def member_tier_history(self, request: Request, member_id: str) -> Any:
        args = query_args(request)
        return self.members.tier_history(member_id, limit=args.get("limit"), cursor=args.get("cursor"))

    @route("PUT", "/v1/members/<member_id>/tier", "tiers:manage", tags=TIERS, body=ManualTierSchema,
           summary="Set a member's tier by hand, with a note (group admins)", idempotent=True,
           responses={200: TierStatusSchema, 404: None, 409: None})
    def set_member_tier(self, request: Request, member_id: str) -> Any:
        return self.members.change_tier(member_id, request.json_body, idempotency_key=idempotency_key(request))

    @route("GET", "/v1/programme/tiers", "programme:read", tags=TIERS, responses={200: ProgrammeInForceSchema},
           summary="The tier programme in force: ladder, thresholds, benefits, review and segment rules")
    def programme(self, request: Request) -> Any:
        return self.members.get_programme()

    @route("PUT", "/v1/programme/tiers", "programme:write", tags=TIERS, body=ProgrammeChangeSchema,
           summary="Put a new version of the tier programme in force (group admins)", idempotent=True,
           responses={200: ProgrammeInForceSchema, 409: None})
    def set_programme(self, request: Request) -> Any:
        return self.members.set_programme(request.json_body, idempotency_key=idempotency_key(request))

    @route("POST", "/v1/programme/tiers/preview", "programme:write", tags=TIERS, body=ProgrammeChangeSchema,
           summary="What a proposed tier programme would do: members moved up and down (nothing is stored)",
           responses={200: ProgrammePreviewSchema, 409: None})
    def preview_programme(self, request: Request) -> Any:
        return self.members.preview_programme(request.json_body)

    # --- benefits -------------------------------------------------------------------------------------

    @route("GET", "/v1/members/<member_id>/benefits", "members:read", tags=TIERS, responses={200: BenefitsSchema},
           summary="What a member's tier gives now: discounts, booking horizon, quotas left this benefit year")
    def member_benefits(self, request: Request, member_id: str) -> Any:
        return self.members.benefits(member_id)

    @route("POST", "/v1/members/<member_id>/benefits/<benefit>/use", "benefits:use", tags=TIERS,
           body=QuotaUseRequestSchema, responses={200: QuotaUseSchema, 404: None, 409: None},
           summary="Use a yearly quota for a visit (the same visit twice is one use; none left: 409)")
    def use_benefit(self, request: Request, member_id: str, benefit: str) -> Any:
        return self.members.use_quota(member_id, benefit, request.json_body)

    @route("POST", "/v1/members/<member_id>/benefits/<benefit>/undo", "benefits:use", tags=TIERS,
           body=QuotaUndoRequestSchema, responses={200: QuotaUseSchema, 404: None},
           summary="Give back a quota use (the visit was cancelled); undoing twice is one undo")
    def undo_benefit(self, request: Request, member_id: str, benefit: str) -> Any:
        return self.members.undo_quota(member_id, benefit, request.json_body)

    @route("POST", "/v1/members/<member_id>/price", "members:read", tags=TIERS, body=PriceRequestSchema,
           responses={200: PriceSchema, 404: None},
           summary="A bill with the member's discounts applied (per line, rounded half up to a minor unit)")
    def price_bill(self, request: Request, member_id: str) -> Any:
        return self.members.price(member_id, request.json_body)

    # --- segments -------------------------------------------------------------------------------------

    @route("GET", "/v1/segments/<segment>/members", "segments:read", tags=TIERS, query=SegmentQuerySchema,
           summary="Members of segment A, B or C, by branch, optionally at churn risk, a page at a time",
           responses={200: SegmentPageSchema})
    def segment_members(self, request: Request, segment: str) -> Any:
        args = query_args(request)
        return self.members.segment_members(segment, branch=args.get("branch"), limit=args.get("limit"),
                                            cursor=args.get("cursor"), churn_risk=args.get("churn_risk"))

    @route("GET", "/v1/members/<member_id>/segment", "segments:read", tags=TIERS,
           summary="A member's segment, RFM scores and churn risk as last graded")
    def member_segment(self, request: Request, member_id: str) -> Any:
        return self.members.member_segment(member_id)

    # --- merges and lifecycle -------------------------------------------------------------------------

    @route("POST", "/v1/members/<member_id>/merge", "members:merge", tags=("members",), body=MergeRequestSchema,
           summary="Merge a duplicate into this member (history moves over; audited, reversible)",
           responses={200: MergeSchema, 404: None, 409: None}, idempotent=True)
    def merge_members(self, request: Request, member_id: str) -> Any:
        return self.members.merge_members(member_id, request.json_body, idempotency_key=idempotency_key(request))

    @route("POST", "/v1/merges/<merge_id>/reverse", "members:merge", tags=("members",), body=MergeReversalSchema,
           summary="Reverse a merge, row for row", responses={200: MergeSchema, 404: None, 409: None},
           idempotent=True)
    def reverse_merge(self, request: Request, merge_id: str) -> Any:
        return self.members.reverse_merge(merge_id, request.json_body, idempotency_key=idempotency_key(request))

    @route("GET", "/v1/members/<member_id>/merges", "members:audit", tags=("members",),
           summary="Merges this member took part in")
    def member_merges(self, request: Request, member_id: str) -> Any:
        return self.members.member_merges(member_id)

    @route("POST", "/v1/members/<member_id>/freeze", "members:status", tags=("members",),
           body=MemberStatusChangeSchema, responses={200: MemberSchema, 404: None, 409: None},
           summary="Freeze a membership: no earning, redeeming, quota use or discount")
    def freeze_member(self, request: Request, member_id: str) -> Any:
        return self.members.freeze_member(member_id, request.json_body)

    @route("POST", "/v1/members/<member_id>/unfreeze", "members:status", tags=("members",),
           body=MemberStatusChangeSchema, responses={200: MemberSchema, 404: None, 409: None},
           summary="Reactivate a frozen membership (its tier is re-evaluated at once)")
    def unfreeze_member(self, request: Request, member_id: str) -> Any:
        return self.members.unfreeze_member(member_id, request.json_body)

    @route("POST", "/v1/members/<member_id>/close", "members:close", tags=("members",),
           body=MemberStatusChangeSchema, responses={200: MemberSchema, 404: None, 409: None},
           summary="Close a membership and erase its personal data (an erasure request)")
    def close_member(self, request: Request, member_id: str) -> Any:
        return self.members.close_member(member_id, request.json_body)

    @route("GET", "/v1/members/<member_id>/status-history", "members:audit", tags=("members",),
           summary="Who froze, reactivated or closed the membership, when and why")
    def member_status_history(self, request: Request, member_id: str) -> Any:
        return self.members.status_history(member_id)

    @route("POST", "/v1/ops/members/nightly", "ops:nightly", tags=("operations",),
           summary="Run (or continue) tonight's tier reviews and segmentation now (once per day)")
    def run_members_nightly(self, request: Request) -> Any:
        return self.members.run_nightly(max_batches=query_args(request, ("max_batches",)).get("max_batches"))
