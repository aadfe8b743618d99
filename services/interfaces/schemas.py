"""What the interfaces service's RPCs take (input schemas, ``load``) and answer (output schemas, ``dump``);
the gateway's OpenAPI document is built from them."""

from __future__ import annotations

from marshmallow import fields, validate

from services.kit.schemas import Schema


class Hl7AnswerSchema(Schema):
    """What an HL7 message was answered: the ACK (ER7 text, segments ended by CR) and its MSA-1."""

    ack = fields.String(required=True)
    ack_code = fields.String(required=True, validate=validate.OneOf(("AA", "AE", "AR")))
