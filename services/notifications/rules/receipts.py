"""Providers' delivery receipts: is a receipt really from the provider, and what does it say happened.

Each provider signs its callbacks its own way, with a secret only it and we know:

- **SMS** (Twilio and compatible): ``X-Twilio-Signature`` = base64 HMAC-SHA1, keyed with the account's
  auth token, of the full URL the provider posted to followed by every form parameter as key + value,
  sorted by key. The status callback's form says ``MessageSid`` and ``MessageStatus`` (``queued``,
  ``sent``, ``delivered``, ``undelivered``, ``failed``, ``read``) and an ``ErrorCode`` on failure.
- **WeChat** (Official Account server URL, plain mode): the query's ``signature`` = hex SHA-1 of the
  server token, ``timestamp`` and ``nonce`` sorted and joined; the XML event ``TEMPLATESENDJOBFINISH``
  names the template message (``MsgID``) and its ``Status`` (``success``, ``failed:user block``,
  ``failed: system failed``).
- **LINE** (webhook): ``X-Line-Signature`` = base64 HMAC-SHA256 of the body keyed with the channel
  secret. A ``delivery`` event (LINE's delivery completion of a notification message) carries our
  delivery id as its ``delivery.data``; LINE sends no receipt for plain pushes.

Pure functions: the service looks the messages up and moves them (``receipts.py`` beside the service).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl
from xml.etree import ElementTree

DELIVERED = "delivered"
FAILED = "failed"

SMS_FINAL = {"delivered": DELIVERED, "read": DELIVERED, "undelivered": FAILED, "failed": FAILED}
"""Twilio's final message statuses and the state each means; the others (queued, sending, sent) are progress."""

SMS_ERRORS = {
    30003: "the handset is unreachable (switched off or out of coverage)",
    30004: "the recipient blocked the message",
    30005: "unknown or inactive number",
    30006: "a landline or unreachable carrier",
    30007: "filtered by the carrier as spam",
    30008: "the carrier could not deliver it",
}

WECHAT_FAILURES = {
    "failed:user block": "the member blocked messages from the official account",
    "failed: system failed": "WeChat could not deliver it (system failed)",
}


class BadSignature(Exception):
    """The callback is not signed by the provider we know (or not signed at all)."""


class Unreadable(Exception):
    """The callback is signed but its body cannot be read as the provider's format."""


@dataclass(frozen=True)
class Receipt:
    """What a provider says about one message it took: by its id (``provider_id``) or by ours."""

    channel: str
    state: str  # delivered or failed
    provider_id: str | None = None
    delivery_id: str | None = None
    reason: str | None = None


def _same(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.strip().encode())


# -- SMS (Twilio) ----------------------------------------------------------------------------------------

def sms_signature(auth_token: str, url: str, params: list[tuple[str, str]]) -> str:
    """Twilio's request signature: base64 HMAC-SHA1 over the URL and the sorted parameters."""
    data = url + "".join(key + value for key, value in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def sms_receipt(auth_token: str, url: str, signature: str | None, body: str) -> Receipt | None:
    """The receipt of a signed status callback; None when the status is not final (queued, sent...)."""
    params = parse_qsl(body, keep_blank_values=True)
    if not auth_token or not _same(sms_signature(auth_token, url, params), signature):
        raise BadSignature("the SMS status callback is not signed with our auth token")
    form = dict(params)
    sid, status = form.get("MessageSid") or form.get("SmsSid"), (form.get("MessageStatus") or "").lower()
    if not sid or not status:
        raise Unreadable("an SMS status callback names MessageSid and MessageStatus")
    state = SMS_FINAL.get(status)
    if state is None:
        return None
    reason = None
    if state == FAILED:
        code = form.get("ErrorCode") or ""
        meaning = SMS_ERRORS.get(int(code)) if code.isdigit() else None
        reason = f"SMS provider: {status}" + (f" (error {code}: {meaning})" if meaning else
                                               f" (error {code})" if code else "")
    return Receipt("sms", state, provider_id=sid, reason=reason)


# -- WeChat ----------------------------------------------------------------------------------------------

def wechat_signature(token: str, timestamp: str, nonce: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()


def wechat_verify(token: str, query: dict[str, str]) -> None:
    """Refuse a callback whose ``signature`` is not the server token's over its ``timestamp`` and ``nonce``."""
    timestamp, nonce = query.get("timestamp") or "", query.get("nonce") or ""
    if not token or not timestamp or not nonce or not _same(wechat_signature(token, timestamp, nonce),
                                                            query.get("signature")):
        raise BadSignature("the WeChat callback is not signed with our server token")


def wechat_receipt(token: str, query: dict[str, str], body: str) -> Receipt | None:
    """The receipt of a signed template-send report; None for any other event WeChat pushes to the URL."""
    wechat_verify(token, query)
    if "<!DOCTYPE" in body.upper() or "<!ENTITY" in body.upper():  # no entities: plain event XML only
        raise Unreadable("WeChat events carry no document type")
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        raise Unreadable("the WeChat event is not XML") from None
    fields = {child.tag: (child.text or "").strip() for child in root}
    if fields.get("MsgType") != "event" or fields.get("Event", "").upper() != "TEMPLATESENDJOBFINISH":
        return None
    msg_id, status = fields.get("MsgID") or fields.get("MsgId"), fields.get("Status", "")
    if not msg_id or not status:
        raise Unreadable("a template-send report names MsgID and Status")
    if status == "success":
        return Receipt("wechat", DELIVERED, provider_id=msg_id)
    return Receipt("wechat", FAILED, provider_id=msg_id,
                   reason=f"WeChat: {WECHAT_FAILURES.get(status, status[:120])}")


# -- LINE ------------------------------------------------------------------------------------------------

def line_signature(channel_secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(channel_secret.encode(), body, hashlib.sha256).digest()).decode()


def line_receipts(channel_secret: str, signature: str | None, body: str) -> tuple[list[Receipt], int]:
    """The receipts of a signed webhook (delivery completions) and how many other events it carried."""
    if not channel_secret or not _same(line_signature(channel_secret, body.encode()), signature):
        raise BadSignature("the LINE webhook is not signed with our channel secret")
    try:
        events = json.loads(body).get("events")
    except (ValueError, AttributeError):
        raise Unreadable("the LINE webhook is not a JSON object with events") from None
    if not isinstance(events, list):
        raise Unreadable("the LINE webhook is not a JSON object with events")
    found: list[Receipt] = []
    for event in events:
        data = _dig(event, "delivery", "data") if isinstance(event, dict) and event.get("type") == "delivery" else None
        if data:
            found.append(Receipt("line", DELIVERED, delivery_id=str(data)))
    return found, len(events) - len(found)


def _dig(value: Any, *keys: str) -> Any:
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value
