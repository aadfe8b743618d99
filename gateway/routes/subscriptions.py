"""Outbound webhook subscriptions (interfaces service): an integration is told of events at a URL on the
deployment's allowlist, each delivery signed like the inbound webhooks, retried for 24 h, then parked;
the delivery log of each subscription, and replay."""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request

from gateway.http import idempotency_key, query_args, route
from gateway.upstream import Upstream
from services.interfaces.schemas import (
    DeliveryQuerySchema,
    IssuedSubscriptionSchema,
    SubscriptionListSchema,
    SubscriptionQuerySchema,
    SubscriptionRequestSchema,
    SubscriptionSchema,
    WebhookDeliveryPageSchema,
    WebhookDeliverySchema,
)

TAGS = ("webhook subscriptions",)


class SubscriptionRoutes:
    interfaces = Upstream("interfaces")

    @route("POST", "/v1/subscriptions", "subscriptions:manage", tags=TAGS, body=SubscriptionRequestSchema,
           summary="Subscribe an integration to an event type at a URL (its signing secret is shown once)",
           description="The target's host must be on the deployment's allowlist (WEBHOOK_ALLOWED_HOSTS), else 422 "
                       "and nothing is stored. Each delivery is a JSON POST with X-CareLoop-Event, "
                       "X-CareLoop-Delivery (dedupe on it), X-CareLoop-Timestamp and X-CareLoop-Signature "
                       "(v1=HMAC-SHA256 of \"<timestamp>.\" + body with the secret), retried with backoff for 24 h "
                       "until a 2xx, then parked.",
           responses={201: IssuedSubscriptionSchema})
    def subscribe(self, request: Request) -> tuple[int, Any]:
        return 201, self.interfaces.subscribe(request.json_body, idempotency_key=idempotency_key(request))

    @route("GET", "/v1/subscriptions", "subscriptions:read", tags=TAGS, query=SubscriptionQuerySchema,
           summary="The webhook subscriptions (of one integration with ?integration=)",
           responses={200: SubscriptionListSchema})
    def list_subscriptions(self, request: Request) -> Any:
        return self.interfaces.webhook_subscriptions(query_args(request))

    @route("DELETE", "/v1/subscriptions/<subscription_id>", "subscriptions:manage", tags=TAGS,
           summary="Stop a subscription (no new deliveries; again: no change)",
           responses={200: SubscriptionSchema, 404: None})
    def unsubscribe(self, request: Request, subscription_id: str) -> Any:
        return self.interfaces.unsubscribe(subscription_id)

    @route("GET", "/v1/subscriptions/<subscription_id>/deliveries", "subscriptions:read", tags=TAGS,
           query=DeliveryQuerySchema, summary="A subscription's deliveries, newest first, with every attempt",
           responses={200: WebhookDeliveryPageSchema, 404: None})
    def subscription_deliveries(self, request: Request, subscription_id: str) -> Any:
        return self.interfaces.webhook_deliveries(subscription_id, query_args(request))

    @route("POST", "/v1/subscriptions/<subscription_id>/deliveries/<webhook_delivery_id>/replay",
           "subscriptions:manage", tags=TAGS,
           summary="Send a delivery again now (a parked one, or one the subscriber lost), with a new 24 h window",
           responses={200: WebhookDeliverySchema, 404: None})
    def replay_delivery(self, request: Request, subscription_id: str, webhook_delivery_id: str) -> Any:
        return self.interfaces.replay_webhook_delivery(subscription_id, webhook_delivery_id,
                                                       idempotency_key=idempotency_key(request))
