"""The points earning rules (points): the programme file's with the version group admins store through the API
over it (a new version each time), checked by the file's own parsing.

Group admins change them, branch managers read them (gateway/permissions.py ``points-rules:*``): they are
group-wide. Points checks the role again.
"""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request

from gateway.http import idempotency_key, route
from gateway.upstream import Upstream
from services.points.schemas import EarningRulesChangeSchema, EarningRulesSchema

TAGS = ("points",)


class EarningRoutes:
    earning = Upstream("points")

    @route("GET", "/v1/programme/earning", "points-rules:read", tags=TAGS,
           summary="The earning rules in force, the stored version (0: the programme file's alone) and every version",
           responses={200: EarningRulesSchema})
    def get_earning_rules(self, request: Request) -> Any:
        return self.earning.get_earning_rules()

    @route("PUT", "/v1/programme/earning", "points-rules:write", tags=TAGS, body=EarningRulesChangeSchema,
           idempotent=True, summary="Change the earning rules: a new version of the fields sent over the programme "
                                    "file's; everything earned after this answered earns by it (409 when "
                                    "expected_version is not the current one)",
           responses={200: EarningRulesSchema, 409: None})
    def put_earning_rules(self, request: Request) -> Any:
        return self.earning.set_earning_rules(request.json_body, idempotency_key=idempotency_key(request))
