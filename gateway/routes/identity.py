"""The identity review queue (interfaces service): incoming patients who are probably, not surely, members
already, waiting for a branch manager to link them to a member or create a new one."""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request

from gateway.http import idempotency_key, query_args, route
from gateway.upstream import Upstream
from services.interfaces.schemas import (
    ResolutionSchema,
    ReviewDetailSchema,
    ReviewPageSchema,
    ReviewQuerySchema,
    ReviewSchema,
)

TAGS = ("identity",)


class IdentityRoutes:
    interfaces = Upstream("interfaces")

    @route("GET", "/v1/identity/reviews", "identity:review", tags=TAGS, query=ReviewQuerySchema,
           summary="A branch's identity reviews (default: open ones), oldest first",
           responses={200: ReviewPageSchema})
    def identity_reviews(self, request: Request) -> Any:
        return self.interfaces.identity_reviews(query_args(request))

    @route("GET", "/v1/identity/reviews/<review_id>", "identity:review", tags=TAGS,
           summary="One identity review with the original message and its log (the reading is logged)",
           responses={200: ReviewDetailSchema, 404: None})
    def identity_review(self, request: Request, review_id: str) -> Any:
        return self.interfaces.identity_review(review_id)

    @route("POST", "/v1/identity/reviews/<review_id>/resolve", "identity:review", tags=TAGS, body=ResolutionSchema,
           summary="Resolve a review: link the patient to a member, or create a new member",
           description="Once only: a resolved review is 409 saying how it was resolved. Linking adds the "
                       "patient's identifiers to the member; creating enrols even beside a member with the same "
                       "name and date of birth (a phone or identifier another member holds is 409).",
           responses={200: ReviewSchema, 404: None, 409: None}, idempotent=True)
    def resolve_identity_review(self, request: Request, review_id: str) -> Any:
        return self.interfaces.resolve_review(review_id, request.json_body, idempotency_key=idempotency_key(request))
