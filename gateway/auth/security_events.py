"""The gateway's security log: who signed in or failed to, who was locked out, which sessions ended,
who changed staff accounts and credentials. Rows never hold a secret; addresses are encrypted."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.models import SecurityEvent
from services.kit.clock import utcnow
from services.kit.paging import keyset_page
from services.kit.telemetry import request_id_var

KINDS = (
    "login_succeeded", "login_failed", "account_locked", "address_locked", "logout", "token_refreshed",
    "refresh_token_reused", "sessions_revoked", "password_changed", "password_reset", "staff_created",
    "staff_updated", "account_unlocked", "api_key_created", "api_key_rotated", "api_key_revoked",
    "webhook_integration_created", "webhook_secret_rotated", "webhook_integration_disabled",
    "webhook_rejected",
)


def record(session: Session, kind: str, *, actor: str | None = None, target: str | None = None,
           address: str | None = None, **detail: Any) -> None:
    """Add a security event to ``session``'s transaction (committed with the change it describes)."""
    if kind not in KINDS:
        raise ValueError(f"unknown security event kind {kind!r}")
    session.add(SecurityEvent(occurred_at=utcnow(), kind=kind, actor=actor, target=target, address=address,
                              detail=json.dumps(detail, separators=(",", ":"), default=str),
                              request_id=request_id_var.get()))


def page(session: Session, criteria: dict[str, Any]) -> dict[str, Any]:
    """A page of events (rows), newest first, filtered by kind, actor or target."""
    query = select(SecurityEvent)
    for name in ("kind", "actor", "target"):
        if criteria.get(name):
            query = query.where(getattr(SecurityEvent, name) == criteria[name])
    if criteria.get("since"):
        query = query.where(SecurityEvent.occurred_at >= criteria["since"])
    rows, cursor = keyset_page(session, query, SecurityEvent.occurred_at, SecurityEvent.id, criteria["limit"],
                               criteria.get("cursor"), descending=True)
    return {"items": rows, "next_cursor": cursor}
