"""LINE Messaging API push messages.

``POST {base_url}/v2/bot/message/push`` with ``Authorization: Bearer {channel access token}`` and
``{"to": userId, "messages": [{"type": "text", "text": ...}]}``; ``200`` answers
``{"sentMessages": [{"id": ..., "quoteToken": ...}]}``. Every push carries ``X-Line-Retry-Key`` (the
delivery id): LINE runs a request with a given key once, and answers a repeat ``409`` with the
``x-line-accepted-request-id`` of the first — so a resend after a crash or a timeout can never make a
duplicate, and a 409 means "already sent". ``429`` is a rate limit, or the monthly message quota.

Settings (``NOTIFICATIONS.channels.line``): ``base_url`` (default https://api.line.me),
``channel_access_token`` (secret).
"""

from __future__ import annotations

import uuid
from typing import Any

from services.notifications.channels.base import Message, PermanentFailure, Receipt, classify_http
from services.notifications.channels.http import ProviderHttp, error_text

MAX_TEXT = 5000  # LINE's limit for a text message


class LineChannel:
    name = "line"
    idempotent = True  # X-Line-Retry-Key

    def __init__(self, settings: dict[str, Any], http: ProviderHttp | None = None) -> None:
        self.base_url = str(settings.get("base_url") or "https://api.line.me").rstrip("/")
        self.token = str(settings["channel_access_token"])
        self.http = http or ProviderHttp()

    @classmethod
    def configured(cls, settings: dict[str, Any]) -> bool:
        return bool(settings.get("channel_access_token"))

    def send(self, message: Message) -> Receipt:
        text = message.text if not message.link else f"{message.text}\n{message.link}"
        body = {"to": message.to, "messages": [{"type": "text", "text": text[:MAX_TEXT]}]}
        retry_key = str(uuid.UUID(message.delivery_id))
        response = self.http.request(
            "POST", f"{self.base_url}/v2/bot/message/push", json=body,
            headers={"Authorization": f"Bearer {self.token}", "X-Line-Retry-Key": retry_key})
        if response.status_code == 200:
            return Receipt(provider_id=_sent_id(response) or response.headers.get("x-line-request-id"))
        if response.status_code == 409 and response.headers.get("x-line-accepted-request-id"):
            # accepted before (we crashed or timed out after LINE took it): it is sent, once
            return Receipt(provider_id=_sent_id(response) or response.headers["x-line-accepted-request-id"])
        reason = error_text(response, "message")
        if response.status_code == 429 and "monthly limit" in reason.lower():
            raise PermanentFailure("LINE monthly message quota reached", status=429)
        raise classify_http(response.status_code, reason, response.headers.get("Retry-After"))


def _sent_id(response: Any) -> str | None:
    try:
        sent = response.json().get("sentMessages") or []
    except (ValueError, AttributeError):
        return None
    return str(sent[0]["id"]) if sent and sent[0].get("id") else None
