"""The notifications service's contract."""

from __future__ import annotations

from marshmallow import fields

from services.kit.schemas import Schema


class DeliverySchema(Schema):
    id = fields.String()
    member_id = fields.String()
    journey = fields.String()
    channel = fields.String(allow_none=True)
    state = fields.String(metadata={"description": "queued, sent, delivered, failed or suppressed"})
    reason = fields.String(allow_none=True)
    due_at = fields.AwareDateTime()
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()


class DeliveryPageSchema(Schema):
    items = fields.List(fields.Nested(DeliverySchema))
    next_cursor = fields.String(allow_none=True)
