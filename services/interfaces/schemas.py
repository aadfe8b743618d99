"""What the interfaces service's RPCs take (input schemas, ``load``) and answer (output schemas, ``dump``);
the gateway's OpenAPI document is built from them."""

from __future__ import annotations

import json
from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from services.interfaces.models import CREATED, DELIVERY_STATES, IMPORT_STATES, LINKED, REVIEW_STATES
from services.interfaces.webhooks.rules import EVENT_TYPES
from services.kit.clock import utcnow
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


class Hl7AnswerSchema(Schema):
    """What an HL7 message was answered: the ACK (ER7 text, segments ended by CR) and its MSA-1."""

    ack = fields.String(required=True)
    ack_code = fields.String(required=True, validate=validate.OneOf(("AA", "AE", "AR")))


# --- outbound webhooks ---------------------------------------------------------------------------------


class SubscriptionRequestSchema(Schema):
    integration = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9][a-z0-9-]{1,63}$"),
                                metadata={"description": "The integration the events are for (its id)."})
    event_type = fields.String(required=True, validate=validate.OneOf(EVENT_TYPES))
    target_url = fields.String(required=True, validate=validate.Length(min=8, max=500),
                               metadata={"description": "http(s) URL on a host of WEBHOOK_ALLOWED_HOSTS."})


class SubscriptionSchema(Schema):
    """A webhook subscription (its secret is never shown again after creation)."""

    id = fields.String()
    integration = fields.String()
    event_type = fields.String()
    target_url = fields.String()
    created_at = UtcTime()
    created_by = fields.String()
    disabled_at = UtcTime(allow_none=True)
    active = computed(fields.Boolean(), lambda row: row.disabled_at is None)


class IssuedSubscriptionSchema(SubscriptionSchema):
    """A new subscription with its signing secret, shown this once: deliveries carry
    ``X-CareLoop-Signature: v1=<hex HMAC-SHA256(secret, "<X-CareLoop-Timestamp>." + body)>``."""

    secret = fields.String()


class SubscriptionListSchema(Schema):
    items = fields.List(fields.Nested(SubscriptionSchema), required=True)


class SubscriptionQuerySchema(Schema):
    integration = fields.String(load_default=None, validate=validate.Length(min=1, max=64))


class DeliveryQuerySchema(Schema):
    limit = StrictInteger(load_default=20, validate=validate.Range(min=1, max=100))
    cursor = fields.String(load_default=None, allow_none=True)


class WebhookAttemptSchema(Schema):
    number = fields.Integer()
    at = UtcTime()
    status = fields.Integer(allow_none=True, metadata={"description": "The target's HTTP status; null: no answer."})
    error = fields.String(allow_none=True)
    duration_ms = fields.Integer()


class WebhookDeliverySchema(Schema):
    """One event for one subscription, with every attempt made."""

    id = fields.String()
    event_id = fields.String()
    event_type = fields.String()
    state = fields.String(validate=validate.OneOf(DELIVERY_STATES))
    attempts = fields.Integer()
    next_attempt_at = UtcTime(allow_none=True)
    last_status = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    created_at = UtcTime()
    delivered_at = UtcTime(allow_none=True)
    log = fields.List(fields.Nested(WebhookAttemptSchema))


WebhookDeliveryPageSchema = page_of(WebhookDeliverySchema)


IMPORT_KINDS = ("members", "points_openings", "wallet_openings", "visits")
ENCODINGS = ("utf-8", "utf-8-sig", "gb18030", "big5")


class ImportSpecSchema(Schema):
    """A new import: what its rows are, the file's name, and how to read it (all optional but the two)."""

    kind = fields.String(required=True, validate=validate.OneOf(IMPORT_KINDS), metadata={
        "description": "members; points_openings (points as lots with their expiry dates); wallet_openings "
                       "(stored value, the paid part and the bonus part apart); visits (historical bills, a row "
                       "per line: items and payments; no points, follow-ups or messages follow)."})
    filename = fields.String(required=True, validate=validate.Length(min=1, max=200))
    encoding = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(ENCODINGS),
                             metadata={"description": "A CSV's encoding; worked out from the file if not given."})
    sheet = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=100),
                          metadata={"description": "The .xlsx sheet to read; the first if not given."})
    day_first = fields.Boolean(load_default=None, allow_none=True,
                               metadata={"description": "05/03/2024 is 5 March (true) or May 3 (false)."})
    mapping = fields.Dict(keys=fields.String(validate=validate.Length(max=100)),
                          values=fields.String(validate=validate.Length(max=40)), load_default=None,
                          allow_none=True, metadata={"description": "Header as written -> field, where the "
                                                                    "aliases do not find it."})
    default_branch = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=16),
                                   metadata={"description": "The home branch of rows that name none."})
    identifier_system = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=3, max=200),
                                      metadata={"description": "Balances, visits: the system that issued the "
                                                               "identifier column's values (e.g. the old HIS's "
                                                               "patient ids)."})


def _json(attribute: str) -> Any:
    return lambda job: json.loads(getattr(job, attribute)) if getattr(job, attribute) else None


def _rate(job: Any) -> float | None:
    if job.phase_started_at is None or not job.processed_rows:
        return None
    elapsed = ((job.finished_at or utcnow()) - job.phase_started_at).total_seconds()
    return round(job.processed_rows / elapsed, 1) if elapsed > 0 else None


def _percent(job: Any) -> float | None:
    if not job.total_rows:
        return 100.0 if job.finished_at and job.total_rows == 0 else None
    return round(100 * min(job.processed_rows, job.total_rows) / job.total_rows, 1)


def _estimate(job: Any) -> int | None:
    rate = _rate(job)
    if rate is None or job.total_rows is None or job.finished_at is not None:
        return None
    return int((job.total_rows - job.processed_rows) / rate) if rate else None


class ImportCountsSchema(Schema):
    valid = fields.Integer(attribute="valid_rows")
    invalid = fields.Integer(attribute="invalid_rows")
    present = fields.Integer(attribute="present_rows",
                             metadata={"description": "Rows an existing member matches (already present)."})
    repeated = fields.Integer(attribute="repeated_rows",
                              metadata={"description": "Rows that are the same person as an earlier row."})
    imported = fields.Integer(attribute="imported_rows")


class ImportJobSchema(Schema):
    id = fields.String()
    kind = fields.String()
    state = fields.String(validate=validate.OneOf(IMPORT_STATES))
    filename = fields.String()
    file_kind = fields.String()
    encoding = fields.String(allow_none=True)
    sheet = fields.String(allow_none=True)
    day_first = fields.Boolean(allow_none=True)
    default_branch = fields.String(allow_none=True)
    identifier_system = fields.String(allow_none=True)
    size_bytes = fields.Integer()
    columns = computed(fields.Dict(allow_none=True, metadata={
        "description": "found: field -> header as written; ignored: headers no field took"}), _json("columns"))
    total_rows = fields.Integer(allow_none=True)
    processed_rows = fields.Integer()
    percent = computed(fields.Float(allow_none=True), _percent)
    rows_per_second = computed(fields.Float(allow_none=True), _rate)
    seconds_left = computed(fields.Integer(allow_none=True, metadata={"description": "An estimate."}), _estimate)
    counts = computed(fields.Nested(ImportCountsSchema), lambda job: job)
    error = fields.String(allow_none=True)
    created_by = fields.String()
    created_at = UtcTime()
    updated_at = UtcTime()
    finished_at = UtcTime(allow_none=True)


ImportJobPageSchema = page_of(ImportJobSchema)


class ImportChunkSchema(Schema):
    offset = StrictInteger(required=True, validate=validate.Range(min=0))
    data = fields.Raw(required=True, metadata={"description": "The bytes of the file from offset on."})


class ImportIssueSchema(Schema):
    row = fields.Integer()
    column = fields.String()
    value = fields.String(allow_none=True)
    message = fields.String()


ImportIssuePageSchema = page_of(ImportIssueSchema)
