"""What the interfaces service's RPCs take (input schemas, ``load``) and answer (output schemas, ``dump``);
the gateway's OpenAPI document is built from them."""

from __future__ import annotations

import json
from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from services.interfaces.models import CREATED, LINKED, REVIEW_STATES
from services.kit.schemas import Schema, StrictInteger, UtcTime, computed, page_of

BRANCH = validate.Length(min=1, max=16)
MAX_ORIGINAL = 1024 * 1024  # the gateway's body limit: an original message is never longer


# --- identify: the adapters' one entry ------------------------------------------------------------------


class ArrivalSchema(Schema):
    """A patient arriving from outside (``interfaces.identify``): the patient in the shape of members'
    ``PatientSchema`` (checked there), who sent it, and the message as received (kept with a review)."""

    patient = fields.Dict(required=True, metadata={"description": "members' PatientSchema: full_name, "
                                                                  "birth_date, gender, phones, id_document, "
                                                                  "identifiers, home_branch, ..."})
    source = fields.String(required=True, validate=validate.Length(min=1, max=120),
                           metadata={"description": "Who sent it: webhook:<integration>, hl7:<facility>, fhir:<key>, "
                                                    "import:<job>."})
    source_ref = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=200),
                               metadata={"description": "The sender's id of this message (HL7 MSH-10, a row "
                                                        "number...): one review per (source, source_ref)."})
    original = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=MAX_ORIGINAL),
                             metadata={"description": "The message as received, kept (encrypted) with a review."})
    original_format = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=60),
                                    metadata={"description": "Its media type, e.g. application/json, "
                                                             "x-application/hl7-v2+er7, application/fhir+json."})


class CandidateSchema(Schema):
    """A member the patient may be, and what matched."""

    member_id = fields.String()
    card_number = fields.String()
    matched_on = fields.List(fields.String(), metadata={
        "description": "identifier, phone, id_document, name_and_birth_date."})


def _json(attribute: str) -> Any:
    return lambda review: json.loads(getattr(review, attribute))


class ReviewSchema(Schema):
    """An identity review: an incoming patient who is probably, not surely, one of the ``candidates``."""

    id = fields.String()
    branch = fields.String()
    source = fields.String()
    source_ref = fields.String(allow_none=True)
    status = fields.String(validate=validate.OneOf(REVIEW_STATES))
    patient = computed(fields.Dict(metadata={"description": "The patient as it arrived (members' PatientSchema)."}),
                       _json("patient"))
    candidates = computed(fields.List(fields.Nested(CandidateSchema)), _json("candidates"))
    created_at = UtcTime()
    created_by = fields.String()
    resolved_at = UtcTime(allow_none=True)
    resolved_by = fields.String(allow_none=True)
    member_id = fields.String(allow_none=True, metadata={
        "description": "The member the patient was linked to or enrolled as, once resolved."})


ReviewPageSchema = page_of(ReviewSchema)


class ReviewLogSchema(Schema):
    action = fields.String(metadata={"description": "queued, read, linked, created."})
    actor = fields.String()
    at = UtcTime()


class ReviewDetailSchema(ReviewSchema):
    """A review with the original message and who did what to it."""

    original = fields.String(allow_none=True)
    original_format = fields.String(allow_none=True)
    log = fields.List(fields.Nested(ReviewLogSchema))


class IdentityResultSchema(Schema):
    """What ``identify`` did: ``matched`` (a sure match, linked: ``member``), ``enrolled`` (nobody: ``member``
    is new) or ``review`` (a probable match: nothing changed, ``review`` waits for a branch manager)."""

    outcome = fields.String(required=True, validate=validate.OneOf(("matched", "enrolled", "review")))
    member = fields.Dict(allow_none=True, metadata={"description": "The member as members answers it."})
    matched_on = fields.List(fields.String())
    review = fields.Nested(ReviewSchema, allow_none=True)


# --- the review queue ---------------------------------------------------------------------------------


class ReviewQuerySchema(Schema):
    branch = fields.String(required=True, validate=BRANCH)
    status = fields.String(load_default="open", validate=validate.OneOf(REVIEW_STATES))
    limit = StrictInteger(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(load_default=None, allow_none=True)


class ResolutionSchema(Schema):
    """How a person resolves a review: ``link`` to the member (the patient's identifiers are added to it),
    or ``create`` a new member (with ``phone`` instead of the one sent, when that one is another member's)."""

    action = fields.String(required=True, validate=validate.OneOf(("link", "create")))
    member_id = fields.UUID(load_default=None, allow_none=True, metadata={"description": "For link: who it is."})
    phone = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=3, max=32),
                          metadata={"description": "For create: the new member's mobile, first of the patient's."})

    @validates_schema
    def _complete(self, data: dict[str, Any], **_: Any) -> None:
        if data["action"] == "link" and data["member_id"] is None:
            raise ValidationError("Say which member to link to.", "member_id")
        if data["action"] == "create" and data["member_id"] is not None:
            raise ValidationError("A new member has no id yet; leave member_id out.", "member_id")
        if data["action"] == "link" and data["phone"] is not None:
            raise ValidationError("A phone is only given when creating a member.", "phone")


RESOLVED = {"link": LINKED, "create": CREATED}


class ReviewReceiptSchema(Schema):
    """What a sender is told of a patient put in review: which review, and that it waits."""

    id = fields.String(metadata={"description": "The review's id."})
    status = fields.String(validate=validate.OneOf(REVIEW_STATES))
    branch = fields.String()
