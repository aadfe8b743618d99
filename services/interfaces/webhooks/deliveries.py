"""Webhook deliveries: an event fanned out to its subscriptions, due deliveries claimed and sent, each attempt
recorded, the per-subscription log, replay.

Claiming: due rows are taken ``FOR UPDATE SKIP LOCKED`` (PostgreSQL: replicas never take the same row) and
pushed ``WEBHOOK_LEASE_SECONDS`` ahead before the POST, in their own committed transaction, so no database
transaction stays open across a slow target; a process that dies mid-POST leaves the row due again when the
lease ends (the target may then see the delivery twice: subscribers dedupe on ``X-CareLoop-Delivery``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.interfaces.models import DELIVERED, PARKED, PENDING, WebhookAttempt, WebhookDelivery, WebhookSubscription
from services.interfaces.webhooks import rules, subscriptions
from services.interfaces.webhooks.sender import Outcome
from services.kit.db import Store, parse_uuid
from services.kit.errors import NotFound
from services.kit.paging import keyset_page
from services.kit.telemetry import counter

ATTEMPTS = counter("careloop_webhook_attempts_total", "Outbound webhook attempts, by event type and outcome",
                   ("event_type", "outcome"))


@dataclass(frozen=True)
class Due:
    """A claimed delivery and what sending it needs."""

    id: uuid.UUID
    subscription_id: uuid.UUID
    event_type: str
    target_url: str
    secret: str
    body: str
    attempt: int


@dataclass(frozen=True)
class Retry:
    base_seconds: float
    max_seconds: float
    window: timedelta


def fan_out(session: Session, event_type: str, event_id: str, body: str, now: datetime) -> int:
    """One pending delivery per active subscription to ``event_type`` (the handler's inbox makes it once)."""
    rows = [WebhookDelivery(id=uuid.uuid4(), subscription_id=s.id, event_id=event_id, event_type=event_type,
                            body=body, state=PENDING, attempts=0, first_at=now, next_attempt_at=now, created_at=now)
            for s in subscriptions.active_for(session, event_type)]
    session.add_all(rows)
    return len(rows)


def claim_due(store: Store, now: datetime, limit: int, lease_seconds: float) -> list[Due]:
    """Up to ``limit`` due deliveries, leased to this process (committed before any POST)."""
    with store.transaction() as session:
        query = (select(WebhookDelivery, WebhookSubscription)
                 .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
                 .where(WebhookDelivery.state == PENDING, WebhookDelivery.next_attempt_at <= now)
                 .order_by(WebhookDelivery.next_attempt_at).limit(limit))
        if store.is_postgresql:
            query = query.with_for_update(skip_locked=True, of=WebhookDelivery)
        claimed = []
        for delivery, subscription in session.execute(query).all():
            delivery.next_attempt_at = now + timedelta(seconds=lease_seconds)
            claimed.append(Due(delivery.id, subscription.id, delivery.event_type, subscription.target_url,
                               subscription.secret, delivery.body, delivery.attempts + 1))
        return claimed


def record(store: Store, due: Due, outcome: Outcome, now: datetime, retry: Retry, refused: str | None = None) -> str:
    """Keep the attempt and move the delivery on: delivered, due again after the backoff, or parked. The
    new state."""
    with store.transaction() as session:
        delivery = session.get(WebhookDelivery, due.id, with_for_update=store.is_postgresql)
        if delivery is None or delivery.state != PENDING:
            return delivery.state if delivery is not None else PARKED
        delivery.attempts += 1
        session.add(WebhookAttempt(delivery_id=delivery.id, number=delivery.attempts, at=now, status=outcome.status,
                                   error=(refused or outcome.error), duration_ms=outcome.duration_ms))
        delivery.last_status, delivery.last_error = outcome.status, (refused or outcome.error)
        if outcome.delivered:
            delivery.state, delivery.delivered_at, delivery.next_attempt_at = DELIVERED, now, None
        else:
            following = None if refused else rules.next_attempt(
                delivery.first_at, delivery.attempts, now, retry.base_seconds, retry.max_seconds, retry.window)
            delivery.state = PENDING if following else PARKED
            delivery.next_attempt_at = following
        ATTEMPTS.labels(delivery.event_type, delivery.state).inc()
        return delivery.state


def page(session: Session, subscription_id: Any, limit: int, cursor: str | None) -> tuple[list[Any], str | None]:
    """A subscription's deliveries, newest first, each with its attempts."""
    subscriptions.get(session, subscription_id)
    query = select(WebhookDelivery).where(WebhookDelivery.subscription_id == parse_uuid(subscription_id,
                                                                                          "subscription"))
    rows, next_cursor = keyset_page(session, query, WebhookDelivery.created_at, WebhookDelivery.id, limit, cursor,
                                    descending=True)
    attempts = _attempts_of(session, [row.id for row in rows])
    return [(row, attempts.get(row.id, [])) for row in rows], next_cursor


def _attempts_of(session: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, list[WebhookAttempt]]:
    found: dict[uuid.UUID, list[WebhookAttempt]] = {}
    if ids:
        for attempt in session.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(ids))
                                       .order_by(WebhookAttempt.id)):
            found.setdefault(attempt.delivery_id, []).append(attempt)
    return found


def replay(session: Session, subscription_id: Any, delivery_id: Any, now: datetime) -> tuple[WebhookDelivery, list]:
    """Send a delivery again now, with a new retry window (a delivered one too: the subscriber asked)."""
    delivery = session.get(WebhookDelivery, parse_uuid(delivery_id, "delivery"), with_for_update=True)
    if delivery is None or str(delivery.subscription_id) != str(parse_uuid(subscription_id, "subscription")):
        raise NotFound(f"No delivery {delivery_id} of subscription {subscription_id}.")
    delivery.state, delivery.first_at, delivery.next_attempt_at, delivery.delivered_at = PENDING, now, now, None
    return delivery, _attempts_of(session, [delivery.id]).get(delivery.id, [])
