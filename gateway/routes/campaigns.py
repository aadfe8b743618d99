"""Points campaigns (points): the programme file's, read-only, and those group admins create, change (a new
version each time) and end through the API, checked by the same rule as the file's.

Group admins manage them; branch managers read them (gateway/permissions.py). Points checks the role again.
"""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request

from gateway.http import idempotency_key, query_args, route
from gateway.upstream import Upstream
from services.points.schemas import (
    CampaignChangeSchema,
    CampaignListSchema,
    CampaignQuerySchema,
    CampaignSchema,
    CampaignTermsSchema,
)

TAGS = ("campaigns",)


class CampaignRoutes:
    campaigns = Upstream("points")

    @route("POST", "/v1/campaigns", "campaigns:write", tags=TAGS, body=CampaignTermsSchema, idempotent=True,
           summary="Create a campaign (version 1): from its first day, visits earned after this answered get it",
           responses={201: CampaignSchema, 409: None})
    def create_campaign(self, request: Request) -> tuple[int, Any]:
        return 201, self.campaigns.create_campaign(request.json_body, idempotency_key=idempotency_key(request))

    @route("GET", "/v1/campaigns", "campaigns:read", tags=TAGS, query=CampaignQuerySchema,
           summary="Every campaign (the programme file's first) with its state today",
           responses={200: CampaignListSchema})
    def list_campaigns(self, request: Request) -> Any:
        return self.campaigns.list_campaigns(query_args(request))

    @route("GET", "/v1/campaigns/<campaign_code>", "campaigns:read", tags=TAGS,
           summary="A campaign with every version of its terms and who made each",
           responses={200: CampaignSchema, 404: None})
    def get_campaign(self, request: Request, campaign_code: str) -> Any:
        return self.campaigns.get_campaign(campaign_code)

    @route("PUT", "/v1/campaigns/<campaign_code>", "campaigns:write", tags=TAGS, body=CampaignChangeSchema,
           idempotent=True, summary="Change a campaign: a new version of all its terms (409 once it ended, or when "
                                    "expected_version is not the current one)",
           responses={200: CampaignSchema, 404: None, 409: None})
    def update_campaign(self, request: Request, campaign_code: str) -> Any:
        return self.campaigns.update_campaign(campaign_code, request.json_body,
                                              idempotency_key=idempotency_key(request))

    @route("POST", "/v1/campaigns/<campaign_code>/end", "campaigns:write", tags=TAGS, idempotent=True,
           summary="End a campaign now: visits earned after this answered no longer get it (again: no change)",
           responses={200: CampaignSchema, 404: None, 409: None})
    def end_campaign(self, request: Request, campaign_code: str) -> Any:
        return self.campaigns.end_campaign(campaign_code, idempotency_key=idempotency_key(request))
