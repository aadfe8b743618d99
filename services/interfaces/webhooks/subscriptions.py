"""Webhook subscriptions: created with a fresh signing secret (shown once), listed, disabled."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from services.interfaces.models import WebhookSubscription
from services.interfaces.webhooks import rules
from services.kit.db import parse_uuid
from services.kit.errors import NotFound

SECRET_PREFIX = "whsec_"


def create(session: Session, data: dict[str, Any], allowed_hosts: tuple[str, ...], actor: str,
           now: datetime) -> tuple[WebhookSubscription, str]:
    """A subscription and its secret (the only time the secret is shown); a target off the allowlist is
    ``Invalid`` and nothing is stored."""
    rules.check_target(data["target_url"], allowed_hosts)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    row = WebhookSubscription(id=uuid.uuid4(), integration=data["integration"], event_type=data["event_type"],
                              target_url=data["target_url"], secret=secret, created_at=now, created_by=actor)
    session.add(row)
    session.flush()
    return row, secret


def get(session: Session, subscription_id: Any) -> WebhookSubscription:
    row = session.get(WebhookSubscription, parse_uuid(subscription_id, "subscription"))
    if row is None:
        raise NotFound(f"No webhook subscription {subscription_id}.")
    return row


def listed(session: Session, integration: str | None) -> list[WebhookSubscription]:
    query = select(WebhookSubscription).order_by(WebhookSubscription.created_at, WebhookSubscription.id)
    if integration:
        query = query.where(WebhookSubscription.integration == integration)
    return list(session.scalars(query))


def disable(session: Session, subscription_id: Any, now: datetime) -> WebhookSubscription:
    row = get(session, subscription_id)
    if row.disabled_at is None:
        row.disabled_at = now
    return row


def active_for(session: Session, event_type: str) -> list[WebhookSubscription]:
    return list(session.scalars(select(WebhookSubscription).where(
        WebhookSubscription.event_type == event_type, WebhookSubscription.disabled_at.is_(None))))


_TABLE = WebhookSubscription.__table__
_ANY_ACTIVE = select(_TABLE.c.id).where(_TABLE.c.event_type == bindparam("event_type"),
                                        _TABLE.c.disabled_at.is_(None)).limit(1)


def any_active(connection: Connection, event_type: str) -> bool:
    """Whether anyone subscribes to ``event_type`` (a read on its own, before any transaction: most events
    of a suite have no subscriber, and their handlers then cost this one query)."""
    return connection.execute(_ANY_ACTIVE, {"event_type": event_type}).first() is not None


def active_types(session: Session) -> set[str]:
    """The event types some integration subscribes to now: the interests whose webhook queues stay bound
    (``kit.gates``)."""
    return set(session.scalars(select(_TABLE.c.event_type).where(_TABLE.c.disabled_at.is_(None)).distinct()))
