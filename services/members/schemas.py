"""The members service's contract: what its RPCs accept and return (also the gateway's OpenAPI)."""

from __future__ import annotations

from datetime import date
from typing import Any

from marshmallow import ValidationError, fields, validate, validates

from services.kit.schemas import Schema, StrictInteger

GENDERS = ("female", "male", "other", "undisclosed")
LANGUAGES = ("en", "zh-Hans", "zh-Hant", "es")
SOURCES = ("desk", "self_signup", "his", "import")
STATUSES = ("active", "frozen", "closed")
DOCUMENT_TYPES = ("cn_resident_id", "passport", "hk_macau_permit", "taiwan_permit", "other")
EARLIEST_BIRTH = date(1900, 1, 1)


class ConsentsSchema(Schema):
    """Whether the member agreed to be contacted on each channel, and to marketing at all."""

    sms = fields.Boolean(load_default=False)
    email = fields.Boolean(load_default=False)
    wechat = fields.Boolean(load_default=False)
    line = fields.Boolean(load_default=False)
    marketing = fields.Boolean(load_default=False)


class ConsentsChangeSchema(Schema):
    sms = fields.Boolean()
    email = fields.Boolean()
    wechat = fields.Boolean()
    line = fields.Boolean()
    marketing = fields.Boolean()


class IdDocumentSchema(Schema):
    type = fields.String(required=True, validate=validate.OneOf(DOCUMENT_TYPES))
    number = fields.String(required=True, validate=validate.Length(min=1, max=40))


def _check_birth_date(value: date) -> None:
    if value > date.today():
        raise ValidationError("Date of birth cannot be in the future.")
    if value < EARLIEST_BIRTH:
        raise ValidationError("Date of birth is before 1900.")


class EnrolmentSchema(Schema):
    full_name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    phone = fields.String(required=True, validate=validate.Length(min=3, max=32),
                          metadata={"description": "Mobile number; local numbers are read in the home branch's region."})
    email = fields.Email(load_default=None, allow_none=True)
    gender = fields.String(load_default="undisclosed", validate=validate.OneOf(GENDERS))
    birth_date = fields.Date(required=True)
    preferred_language = fields.String(load_default=None, validate=validate.OneOf(LANGUAGES))
    consents = fields.Nested(ConsentsSchema, load_default=lambda: ConsentsSchema().load({}))
    id_document = fields.Nested(IdDocumentSchema, load_default=None, allow_none=True)
    home_branch = fields.String(required=True, validate=validate.Length(min=1, max=16))
    referral_code = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=16))
    wechat_openid = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))
    line_user_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))
    source = fields.String(load_default="desk", validate=validate.OneOf(SOURCES))

    @validates("birth_date")
    def _birth_date(self, value: date, **_: Any) -> None:
        _check_birth_date(value)

    @validates("full_name")
    def _full_name(self, value: str, **_: Any) -> None:
        if not value.strip():
            raise ValidationError("A name is needed.")


class MemberChangesSchema(Schema):
    """A partial update: only the fields given change."""

    full_name = fields.String(validate=validate.Length(min=1, max=100))
    phone = fields.String(validate=validate.Length(min=3, max=32))
    email = fields.Email(allow_none=True)
    gender = fields.String(validate=validate.OneOf(GENDERS))
    birth_date = fields.Date()
    preferred_language = fields.String(validate=validate.OneOf(LANGUAGES))
    consents = fields.Nested(ConsentsChangeSchema)
    id_document = fields.Nested(IdDocumentSchema, allow_none=True)
    home_branch = fields.String(validate=validate.Length(min=1, max=16))
    wechat_openid = fields.String(allow_none=True, validate=validate.Length(max=64))
    line_user_id = fields.String(allow_none=True, validate=validate.Length(max=64))

    @validates("birth_date")
    def _birth_date(self, value: date, **_: Any) -> None:
        _check_birth_date(value)

    @validates("full_name")
    def _full_name(self, value: str, **_: Any) -> None:
        if not value.strip():
            raise ValidationError("A name is needed.")


class FindMembersSchema(Schema):
    """Find by exactly one of phone, card, id_number or q (name); optionally within a branch."""

    phone = fields.String(validate=validate.Length(min=3, max=32))
    card = fields.String(validate=validate.Length(min=4, max=24))
    id_number = fields.String(validate=validate.Length(min=1, max=40))
    q = fields.String(validate=validate.Length(min=1, max=100))
    branch = fields.String(validate=validate.Length(min=1, max=16))
    limit = StrictInteger(load_default=20, validate=validate.Range(min=1, max=100))
    cursor = fields.String(load_default=None, allow_none=True)


class IdDocumentOutSchema(Schema):
    type = fields.String()
    number = fields.String(metadata={"description": "Masked unless the caller's role may see it."})


class MemberSchema(Schema):
    id = fields.String()
    card_number = fields.String()
    referral_code = fields.String()
    referred_by = fields.String(allow_none=True)
    full_name = fields.String(allow_none=True)
    phone = fields.String(allow_none=True, metadata={"description": "E.164; masked unless the role may see it."})
    email = fields.String(allow_none=True)
    gender = fields.String()
    birth_date = fields.Date(allow_none=True)
    preferred_language = fields.String()
    consents = fields.Nested(ConsentsSchema)
    id_document = fields.Nested(IdDocumentOutSchema, allow_none=True)
    home_branch = fields.String()
    status = fields.String(validate=validate.OneOf(STATUSES))
    tier = fields.String()
    source = fields.String()
    enrolled_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()


class MemberPageSchema(Schema):
    items = fields.List(fields.Nested(MemberSchema))
    next_cursor = fields.String(allow_none=True)


class ContactSchema(Schema):
    """What notifications needs to reach a member (service-to-service only)."""

    member_id = fields.String()
    full_name = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    wechat_openid = fields.String(allow_none=True)
    line_user_id = fields.String(allow_none=True)
    preferred_language = fields.String()
    consents = fields.Nested(ConsentsSchema)
    home_branch = fields.String()
    status = fields.String()
    tier = fields.String()
    birth_mmdd = fields.String(allow_none=True)
