"""What the interfaces service's RPCs take (input schemas, ``load``) and answer (output schemas, ``dump``);
the gateway's OpenAPI document is built from them."""

from __future__ import annotations

from marshmallow import fields, validate

from services.interfaces.models import DELIVERY_STATES
from services.interfaces.webhooks.rules import EVENT_TYPES
from services.kit.schemas import Schema, StrictInteger, UtcTime, computed, page_of


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
