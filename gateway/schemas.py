"""The contract of the gateway's own routes: sign-in, staff accounts, credentials, the security log."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from marshmallow import fields, validate

from gateway import permissions
from gateway.auth import key_status
from gateway.auth.security_events import KINDS as SECURITY_EVENT_KINDS
from gateway.auth.staff import STAFF_ROLES, STATUSES
from gateway.auth.webhooks import active_secrets
from services.kit.caller import ROLES
from services.kit.schemas import Schema, StrictInteger, UtcTime, computed, page_of

F = TypeVar("F", bound=fields.Field)


class CommaList(fields.List):
    """Codes stored as one comma-separated column (branches, permissions), answered as a list of strings."""

    def __init__(self, sort: bool = False, **kwargs: Any) -> None:
        super().__init__(fields.String(), **kwargs)
        self.sort = sort

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:
        codes = [code for code in (value or "").split(",") if code]
        return super()._serialize(sorted(set(codes)) if self.sort else codes, attr, obj, **kwargs)


def _branches(**kwargs: object) -> fields.List:
    return fields.List(fields.String(validate=validate.Length(min=1, max=16)),
                       validate=validate.Length(min=1, max=50),
                       metadata={"description": "Branch codes of the group, or [\"*\"] for every branch."}, **kwargs)


def _permissions(**kwargs: object) -> fields.List:
    return fields.List(fields.String(validate=validate.Length(min=1, max=64)), validate=validate.Length(max=100),
                       metadata={"description": "Narrow the credential to these permissions of its role "
                                                "(see x-permission on each route); empty: all of the role's."},
                       **kwargs)


class LoginSchema(Schema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=64))
    password = fields.String(required=True, validate=validate.Length(min=1, max=256),
                             metadata={"format": "password"})


class RefreshSchema(Schema):
    refresh_token = fields.String(required=True, validate=validate.Length(min=1, max=200))


class PasswordChangeSchema(Schema):
    current_password = fields.String(required=True, validate=validate.Length(min=1, max=256),
                                     metadata={"format": "password"})
    new_password = fields.String(required=True, validate=validate.Length(min=1, max=256),
                                 metadata={"format": "password"})


class StaffSchema(Schema):
    id = fields.String()
    username = fields.String()
    display_name = fields.String()
    role = fields.String(validate=validate.OneOf(STAFF_ROLES))
    branches = CommaList()
    status = fields.String(validate=validate.OneOf(STATUSES))
    password_change_required = fields.Boolean()
    locked_until = UtcTime(allow_none=True, metadata={"description": "Set while sign-in is locked after failures."})
    created_at = UtcTime()
    updated_at = UtcTime()
    password_changed_at = UtcTime()
    last_login_at = UtcTime(allow_none=True)


StaffPageSchema = page_of(StaffSchema)


class TokenGrantSchema(Schema):
    access_token = fields.String(metadata={"description": "Send as Authorization: Bearer <access_token>."})
    token_type = fields.String(metadata={"example": "Bearer"})
    expires_in = fields.Integer(metadata={"description": "Seconds the access token is valid."})
    refresh_token = fields.String(metadata={"description": "Use once at /v1/auth/refresh for a new pair."})
    refresh_expires_in = fields.Integer()
    session_id = fields.String()
    password_change_required = fields.Boolean(
        metadata={"description": "True: only /v1/auth/* routes are open until a new password is chosen."})
    user = fields.Nested(StaffSchema)


class MeSchema(Schema):
    """Dumps a ``Principal``."""

    kind = fields.String(attribute="identity.kind", metadata={"description": "staff, system"})
    subject = fields.String(attribute="identity.subject")
    role = fields.String(attribute="identity.role", validate=validate.OneOf(ROLES))
    branches = fields.List(fields.String(), attribute="identity.branches")
    name = fields.String(attribute="identity.name")
    permissions = computed(fields.List(fields.String(), metadata={"description": "What this credential may do."}),
                           lambda principal: [p for p in sorted(permissions.GRANTS) if principal.may(p)])
    session_id = fields.String(allow_none=True)
    password_change_required = fields.Boolean()


class SignedOutSchema(Schema):
    signed_out = fields.Boolean()


class StaffCreateSchema(Schema):
    username = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$"))
    display_name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    role = fields.String(required=True, validate=validate.OneOf(STAFF_ROLES))
    branches = _branches(required=True)
    password = fields.String(required=True, validate=validate.Length(min=1, max=256),
                             metadata={"format": "password", "description": "At least 12 characters."})
    password_change_required = fields.Boolean(load_default=True,
                                              metadata={"description": "Ask for a new password at first sign-in."})


class StaffChangesSchema(Schema):
    display_name = fields.String(validate=validate.Length(min=1, max=100))
    role = fields.String(validate=validate.OneOf(STAFF_ROLES))
    branches = _branches()
    status = fields.String(validate=validate.OneOf(STATUSES))


class StaffQuerySchema(Schema):
    role = fields.String(validate=validate.OneOf(STAFF_ROLES))
    status = fields.String(validate=validate.OneOf(STATUSES))
    branch = fields.String(validate=validate.Length(min=1, max=16))
    q = fields.String(validate=validate.Length(min=1, max=64), metadata={"description": "Part of a name."})
    limit = StrictInteger(load_default=20, validate=validate.Range(min=1, max=100))
    cursor = fields.String(load_default=None, allow_none=True)


class PasswordResetSchema(Schema):
    password = fields.String(required=True, validate=validate.Length(min=1, max=256),
                             metadata={"format": "password", "description": "A temporary password."})


class SessionsEndedSchema(Schema):
    user_id = fields.String()
    sessions_ended = fields.Integer()


class ApiKeyCreateSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    branches = _branches(required=True)
    permissions = _permissions(load_default=None)
    expires_at = fields.AwareDateTime(load_default=None, allow_none=True)


class OverlapSchema(Schema):
    overlap_seconds = StrictInteger(load_default=86400, validate=validate.Range(min=0, max=30 * 86400),
                                    metadata={"description": "How long the old credential keeps working."})


class ApiKeySchema(Schema):
    key_id = fields.String()
    name = fields.String()
    role = fields.String()
    branches = CommaList()
    permissions = CommaList(sort=True)
    family = fields.String(metadata={"description": "The first key of its rotation line."})
    rotated_from = fields.String(allow_none=True)
    status = computed(fields.String(validate=validate.OneOf(("active", "expired", "revoked"))), key_status)
    created_at = UtcTime()
    expires_at = UtcTime(allow_none=True)
    revoked_at = UtcTime(allow_none=True)


class IssuedApiKeySchema(ApiKeySchema):
    key = fields.String(metadata={"description": "The key itself: shown this once, never again."})


ApiKeyPageSchema = page_of(ApiKeySchema)


class ApiKeyQuerySchema(Schema):
    role = fields.String(validate=validate.OneOf(ROLES))
    status = fields.String(validate=validate.OneOf(("active", "revoked")))
    family = fields.String(validate=validate.Length(min=1, max=16))
    limit = StrictInteger(load_default=20, validate=validate.Range(min=1, max=100))
    cursor = fields.String(load_default=None, allow_none=True)


class WebhookIntegrationCreateSchema(Schema):
    id = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9][a-z0-9-]{1,63}$"),
                       metadata={"description": "Sent by the integration as X-CareLoop-Integration."})
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    role = fields.String(load_default="integration", validate=validate.OneOf(ROLES))
    branches = _branches(required=True)
    permissions = _permissions(load_default=None)


class WebhookIntegrationSchema(Schema):
    id = fields.String()
    name = fields.String()
    role = fields.String()
    branches = CommaList()
    permissions = CommaList(sort=True)
    created_at = UtcTime()
    disabled_at = UtcTime(allow_none=True)
    active_secrets = computed(fields.Integer(), lambda integration: len(active_secrets(integration)))
    secret_expiries = computed(fields.List(UtcTime()), lambda integration: sorted(
        s.expires_at for s in active_secrets(integration) if s.expires_at))


class IssuedWebhookSecretSchema(WebhookIntegrationSchema):
    secret = fields.String(metadata={"description": "The signing secret: shown this once, never again."})


class WebhookIntegrationListSchema(Schema):
    items = fields.List(fields.Nested(WebhookIntegrationSchema))


class SecurityEventSchema(Schema):
    id = fields.Integer()
    occurred_at = UtcTime()
    kind = fields.String()
    actor = fields.String(allow_none=True)
    target = fields.String(allow_none=True)
    address = fields.String(allow_none=True)
    detail = computed(fields.Dict(), lambda row: json.loads(row.detail or "{}"))
    request_id = fields.String(allow_none=True)


SecurityEventPageSchema = page_of(SecurityEventSchema)


class SecurityEventQuerySchema(Schema):
    kind = fields.String(validate=validate.OneOf(SECURITY_EVENT_KINDS))
    actor = fields.String(validate=validate.Length(min=1, max=80))
    target = fields.String(validate=validate.Length(min=1, max=80))
    since = fields.AwareDateTime()
    limit = StrictInteger(load_default=50, validate=validate.Range(min=1, max=500))
    cursor = fields.String(load_default=None, allow_none=True)
