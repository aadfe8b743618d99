"""Delivery receipts applied: a sent message becomes ``delivered`` or ``failed`` when its provider says so.

The callbacks reach us through the gateway's public receipt routes; the signature is checked here, by the
secret of the provider's channel (``rules.receipts``). A receipt moves only a ``sent`` message; the same
receipt again, or one for a message already in that state, changes nothing (it is idempotent by state),
and a receipt that contradicts a final state (``failed`` after ``delivered``) is counted and ignored.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.kit.errors import BadRequest, Unauthenticated
from services.kit.telemetry import counter
from services.notifications import deliveries
from services.notifications.models import DELIVERED, FAILED, SENT, Delivery
from services.notifications.rules import receipts as rules
from services.notifications.settings import Settings

RECEIPTS = counter("careloop_notifications_receipts_total",
                   "Provider delivery receipts, by channel and outcome (delivered, failed, unchanged, unknown, "
                   "ignored, refused)", ("channel", "outcome"))

PROVIDERS = ("sms", "wechat", "line")


def read(channel: str, callback: dict[str, Any], settings: Settings) -> tuple[list[rules.Receipt], int]:
    """The verified receipts of a provider callback, and how many of its events were not receipts.

    ``callback``: ``body`` (text as posted), ``headers`` (the signature's), ``query``, and for SMS the
    ``url`` the provider posted to (the gateway's ``PUBLIC_BASE_URL`` and the path: what the provider signed)."""
    secrets = settings.channels.get(channel) or {}
    body, headers = str(callback.get("body") or ""), {k.lower(): v for k, v in (callback.get("headers") or {}).items()}
    query = {str(k): str(v) for k, v in (callback.get("query") or {}).items()}
    try:
        if channel == "sms":
            url = str(callback.get("url") or "")
            found = rules.sms_receipt(str(secrets.get("auth_token") or ""), url, headers.get("x-twilio-signature"),
                                      body)
            return ([found] if found else []), (0 if found else 1)
        if channel == "wechat":
            found = rules.wechat_receipt(str(secrets.get("server_token") or ""), query, body)
            return ([found] if found else []), (0 if found else 1)
        if channel == "line":
            return rules.line_receipts(str(secrets.get("channel_secret") or ""), headers.get("x-line-signature"), body)
    except rules.BadSignature as refused:
        RECEIPTS.labels(channel, "refused").inc()
        raise Unauthenticated(f"Refused: {refused}.") from None
    except rules.Unreadable as unreadable:
        raise BadRequest(f"Unreadable receipt: {unreadable}.") from None
    raise BadRequest(f"No receipts are taken from {channel!r}.")


def check_wechat_server(query: dict[str, Any], settings: Settings) -> None:
    """Refuse WeChat's server-URL check unless it is signed with our server token."""
    token = str((settings.channels.get("wechat") or {}).get("server_token") or "")
    try:
        rules.wechat_verify(token, {str(k): str(v) for k, v in (query or {}).items()})
    except rules.BadSignature as refused:
        RECEIPTS.labels("wechat", "refused").inc()
        raise Unauthenticated(f"Refused: {refused}.") from None


def apply(session: Session, receipt: rules.Receipt, now: datetime,
          emit: Callable[..., Any], failed_event: Callable[[Delivery, str], dict[str, Any]]) -> str:
    """Move the message the receipt names; the outcome: delivered, failed, unchanged, unknown or ignored."""
    query = select(Delivery)
    if receipt.delivery_id is not None:
        try:
            query = query.where(Delivery.id == uuid.UUID(receipt.delivery_id), Delivery.channel == receipt.channel)
        except ValueError:
            return "unknown"
    else:
        query = query.where(Delivery.channel == receipt.channel, Delivery.provider_id == receipt.provider_id)
    delivery = session.scalars(query.with_for_update()).first()
    if delivery is None:
        return "unknown"  # not ours (a staff alert, another system on the same account) or not recorded yet
    if delivery.state == receipt.state:
        return "unchanged"
    if delivery.state != SENT:
        return "ignored"  # a final state stays: a late or contradicting receipt is not believed over it
    delivery.state, delivery.updated_at = receipt.state, now
    if receipt.state == DELIVERED:
        delivery.delivered_at, delivery.reason = now, None
        deliveries.add_step(session, delivery.id, DELIVERED, now, channel=delivery.channel,
                            detail="delivery receipt", provider_id=delivery.provider_id)
    else:
        reason = receipt.reason or "the provider could not deliver it"
        delivery.reason = reason
        deliveries.add_step(session, delivery.id, FAILED, now, channel=delivery.channel,
                            detail=f"delivery receipt: {reason}", provider_id=delivery.provider_id)
        emit("notification_failed", failed_event(delivery, reason), session=session)
    return receipt.state


def record(session: Session, channel: str, callback: dict[str, Any], settings: Settings, now: datetime,
           emit: Callable[..., Any], failed_event: Callable[[Delivery, str], dict[str, Any]]) -> dict[str, int]:
    """Verify a callback and apply its receipts; the count of each outcome."""
    found, others = read(channel, callback, settings)
    outcomes = Counter(apply(session, receipt, now, emit, failed_event) for receipt in found)
    if others:
        outcomes["ignored"] += others
    for outcome, count in outcomes.items():
        RECEIPTS.labels(channel, outcome).inc(count)
    return {"received": len(found) + others, **{outcome: outcomes.get(outcome, 0) for outcome in
                                                ("delivered", "failed", "unchanged", "unknown", "ignored")}}
