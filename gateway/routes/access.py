"""System credentials and the security log: API keys (issue, narrow, rotate, revoke), webhook
integrations (create, rotate the signing secret, disable), and who did what at the front door."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from werkzeug.wrappers import Request

from gateway.auth import (
    get_api_key,
    issue_api_key,
    list_api_keys,
    revoke_api_key,
    rotate_api_key,
    security_events,
    webhooks,
)
from gateway.auth.staff import check_branches
from gateway.http import query_args, route
from gateway.schemas import (
    ApiKeyCreateSchema,
    ApiKeyPageSchema,
    ApiKeyQuerySchema,
    ApiKeySchema,
    IssuedApiKeySchema,
    IssuedWebhookSecretSchema,
    OverlapSchema,
    SecurityEventPageSchema,
    SecurityEventQuerySchema,
    WebhookIntegrationCreateSchema,
    WebhookIntegrationListSchema,
    WebhookIntegrationSchema,
)
from services.kit.config import group_from_config
from services.kit.schemas import load

PERMISSION = "credentials:manage"


def _overlap(request: Request) -> timedelta:
    data = load(OverlapSchema(), request.json_body if request.json_body is not None else {})
    return timedelta(seconds=data["overlap_seconds"])


class AccessRoutes:
    @route("GET", "/v1/api-keys", PERMISSION, summary="List API keys (never their secrets)", tags=("credentials",),
           query=ApiKeyQuerySchema, responses={200: ApiKeyPageSchema})
    def list_api_keys(self, request: Request) -> Any:
        return ApiKeyPageSchema().dump(list_api_keys(self.db.store, load(ApiKeyQuerySchema(), query_args(request))))

    @route("POST", "/v1/api-keys", PERMISSION, summary="Issue an API key for a system (shown once)",
           tags=("credentials",), body=ApiKeyCreateSchema, responses={201: IssuedApiKeySchema, 422: None})
    def create_api_key(self, request: Request) -> tuple[int, Any]:
        data = load(ApiKeyCreateSchema(), request.json_body)
        branches = check_branches(data["branches"], group_from_config(self.config))
        issued = issue_api_key(self.db.store, data["name"], data["role"], tuple(branches.split(",")),
                               expires_at=data["expires_at"], permissions=data["permissions"],
                               actor=request.principal.credential)
        return 201, IssuedApiKeySchema().dump(issued)

    @route("GET", "/v1/api-keys/<key_id>", PERMISSION, summary="Read an API key (never its secret)",
           tags=("credentials",), responses={200: ApiKeySchema, 404: None})
    def get_api_key(self, request: Request, key_id: str) -> Any:
        return ApiKeySchema().dump(get_api_key(self.db.store, key_id))

    @route("POST", "/v1/api-keys/<key_id>/rotate", PERMISSION,
           summary="Issue the successor of a key; the old one keeps working for the overlap",
           tags=("credentials",), body=OverlapSchema, responses={201: IssuedApiKeySchema, 404: None, 422: None})
    def rotate_api_key(self, request: Request, key_id: str) -> tuple[int, Any]:
        issued = rotate_api_key(self.db.store, key_id, _overlap(request), actor=request.principal.credential)
        self.auth.forget_key(key_id)
        return 201, IssuedApiKeySchema().dump(issued)

    @route("POST", "/v1/api-keys/<key_id>/revoke", PERMISSION, summary="Revoke an API key now",
           tags=("credentials",), responses={200: ApiKeySchema, 404: None})
    def revoke_api_key(self, request: Request, key_id: str) -> Any:
        get_api_key(self.db.store, key_id)  # 404 for an unknown key
        revoke_api_key(self.db.store, key_id, actor=request.principal.credential)
        self.auth.forget_key(key_id)
        return ApiKeySchema().dump(get_api_key(self.db.store, key_id))

    @route("GET", "/v1/webhook-integrations", PERMISSION, summary="List the systems that send signed webhooks",
           tags=("credentials",), responses={200: WebhookIntegrationListSchema})
    def list_webhook_integrations(self, request: Request) -> Any:
        return WebhookIntegrationListSchema().dump({"items": webhooks.list_integrations(self.db.store)})

    @route("POST", "/v1/webhook-integrations", PERMISSION,
           summary="Register a system that sends signed webhooks (its secret is shown once)",
           tags=("credentials",), body=WebhookIntegrationCreateSchema,
           responses={201: IssuedWebhookSecretSchema, 409: None, 422: None})
    def create_webhook_integration(self, request: Request) -> tuple[int, Any]:
        data = load(WebhookIntegrationCreateSchema(), request.json_body)
        branches = check_branches(data["branches"], group_from_config(self.config))
        issued = webhooks.create_integration(self.db.store, data["id"], data["name"], data["role"], branches,
                                             data["permissions"], request.principal.credential)
        return 201, IssuedWebhookSecretSchema().dump(issued)

    @route("POST", "/v1/webhook-integrations/<integration_id>/rotate-secret", PERMISSION,
           summary="A new signing secret; the old one keeps verifying for the overlap", tags=("credentials",),
           body=OverlapSchema, responses={201: IssuedWebhookSecretSchema, 404: None, 422: None})
    def rotate_webhook_secret(self, request: Request, integration_id: str) -> tuple[int, Any]:
        issued = webhooks.rotate_secret(self.db.store, integration_id, _overlap(request),
                                        request.principal.credential)
        self.auth.webhooks.forget(integration_id)
        return 201, IssuedWebhookSecretSchema().dump(issued)

    @route("POST", "/v1/webhook-integrations/<integration_id>/disable", PERMISSION,
           summary="Stop accepting an integration's webhooks", tags=("credentials",),
           responses={200: WebhookIntegrationSchema, 404: None})
    def disable_webhook_integration(self, request: Request, integration_id: str) -> Any:
        integration = webhooks.disable_integration(self.db.store, integration_id, request.principal.credential)
        self.auth.webhooks.forget(integration_id)
        return WebhookIntegrationSchema().dump(integration)

    @route("GET", "/v1/security-events", "audit:security",
           summary="The gateway's security log: sign-ins, lockouts, sessions, staff and credential changes",
           tags=("audit",), query=SecurityEventQuerySchema, responses={200: SecurityEventPageSchema})
    def security_events(self, request: Request) -> Any:
        criteria = load(SecurityEventQuerySchema(), query_args(request))
        with self.db.store.transaction() as session:
            return SecurityEventPageSchema().dump(security_events.page(session, criteria))
