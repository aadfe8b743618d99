"""Outbound webhook rules, without I/O: the allowlist, the backoff, the body of a delivery."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from services.kit.clock import isoformat
from services.kit.errors import Invalid

EVENT_TYPES = ("member_enrolled", "member_updated", "tier_changed", "visit_completed", "visit_refunded",
               "points_earned", "points_redeemed", "appointment_booked", "appointment_cancelled")
"""The events an integration may subscribe to (each consumed by interfaces from its producer's contract)."""


def check_target(url: str, allowed_hosts: tuple[str, ...]) -> str:
    """``url`` if it may be posted to: http(s), no credentials in it, and its host on the allowlist (an exact
    name or address, or ``*.example.org`` for its subdomains); else ``Invalid`` naming ``target_url``."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
        parts.port  # noqa: B018 - a malformed port raises here
    except ValueError:
        raise Invalid("The target URL is not a valid URL.", {"target_url": ["Not a valid URL."]}) from None
    if parts.scheme not in ("https", "http") or not host:
        raise Invalid("The target URL must be an http(s) URL with a host.", {"target_url": ["Not an http(s) URL."]})
    if parts.username or parts.password:
        raise Invalid("Put no credentials in the target URL: deliveries are signed.",
                      {"target_url": ["Credentials are not allowed in the URL."]})
    if not host_allowed(host, allowed_hosts):
        raise Invalid(f"The target host {host!r} is not on this deployment's allowlist (WEBHOOK_ALLOWED_HOSTS); "
                      "ask the operator to add it.", {"target_url": ["Host not allowed."]})
    return url


def host_allowed(host: str, allowed_hosts: tuple[str, ...]) -> bool:
    host = host.lower().rstrip(".")
    for allowed in allowed_hosts:
        allowed = allowed.lower().strip().rstrip(".")
        if allowed.startswith("*.") and host.endswith(allowed[1:]) and host != allowed[2:]:
            return True
        if host == allowed:
            return True
    return False


def next_attempt(first_at: datetime, attempts: int, now: datetime, base_seconds: float, max_seconds: float,
                 window: timedelta) -> datetime | None:
    """When to try again after ``attempts`` failed tries: ``base`` × 2^(attempts-1), at most ``max_seconds``;
    None when that falls outside the retry window that began at ``first_at`` (then the delivery is parked)."""
    delay = min(base_seconds * (2 ** max(attempts - 1, 0)), max_seconds)
    when = now + timedelta(seconds=delay)
    return when if when <= first_at + window else None


def body_of(event_type: str, event_id: str, occurred_at: datetime | None, data: dict[str, Any]) -> str:
    """What a subscriber receives: the event as its producer's contract dumps it, with its id and time."""
    return json.dumps({"event_id": event_id, "event_type": event_type,
                       "occurred_at": isoformat(occurred_at) if occurred_at else None, "data": data},
                      ensure_ascii=False, separators=(",", ":"), sort_keys=True)
