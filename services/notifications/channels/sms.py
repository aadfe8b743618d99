"""SMS through an HTTP provider speaking Twilio's Messages API (Twilio and its compatible providers).

``POST {base_url}/2010-04-01/Accounts/{account_sid}/Messages.json`` with HTTP basic auth (account sid,
auth token) and a form body ``To``, ``From`` (or ``MessagingServiceSid``), ``Body`` and optionally
``StatusCallback``; ``201`` answers ``{"sid": "SM...", "status": "queued"}``. Errors answer
``{"code": 21211, "message": "...", "status": 400}``; ``429`` (code 20429) is a rate limit, possibly with
``Retry-After``. (Delivery receipts would come back to ``StatusCallback``; see the README's known limits.)

Settings (``NOTIFICATIONS.channels.sms``): ``base_url`` (default https://api.twilio.com),
``account_sid``, ``auth_token`` (secret), ``from`` or ``messaging_service_sid``, ``status_callback``.
"""

from __future__ import annotations

from typing import Any

from services.notifications.channels.base import (
    Message,
    PermanentFailure,
    Receipt,
    TransientFailure,
    classify_http,
)
from services.notifications.channels.http import ProviderHttp

# Twilio error codes that say "this recipient cannot get this message", not "try later"
RECIPIENT_ERRORS = {
    21211: "not a valid phone number",
    21214: "the number cannot be reached",
    21408: "sending to this region is not enabled",
    21610: "the member replied STOP to our messages",
    21612: "the provider cannot route to this number",
    21614: "not a mobile number",
}


class SmsChannel:
    name = "sms"
    idempotent = False  # the Messages API takes no idempotency key: a resend after a crash could duplicate

    def __init__(self, settings: dict[str, Any], http: ProviderHttp | None = None) -> None:
        self.base_url = str(settings.get("base_url") or "https://api.twilio.com").rstrip("/")
        self.account_sid = str(settings["account_sid"])
        self.auth_token = str(settings["auth_token"])
        self.sender = settings.get("from")
        self.messaging_service_sid = settings.get("messaging_service_sid")
        self.status_callback = settings.get("status_callback")
        if not self.sender and not self.messaging_service_sid:
            raise ValueError("the SMS channel needs 'from' or 'messaging_service_sid'")
        self.http = http or ProviderHttp()

    @classmethod
    def configured(cls, settings: dict[str, Any]) -> bool:
        return bool(settings.get("account_sid") and settings.get("auth_token")
                    and (settings.get("from") or settings.get("messaging_service_sid")))

    def send(self, message: Message) -> Receipt:
        form = {"To": message.to, "Body": message.text}
        if self.messaging_service_sid:
            form["MessagingServiceSid"] = str(self.messaging_service_sid)
        else:
            form["From"] = str(self.sender)
        if self.status_callback:
            form["StatusCallback"] = str(self.status_callback)
        response = self.http.request(
            "POST", f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}/Messages.json",
            data=form, auth=(self.account_sid, self.auth_token))
        if response.status_code in (200, 201):
            try:
                sid = response.json().get("sid")
            except ValueError:
                sid = None
            return Receipt(provider_id=sid)
        raise self._failure(response)

    def _failure(self, response: Any) -> Exception:
        try:
            body = response.json()
        except ValueError:
            body = {}
        code = body.get("code") if isinstance(body, dict) else None
        text = (body.get("message") if isinstance(body, dict) else None) or response.reason or "error"
        if code in RECIPIENT_ERRORS:
            return PermanentFailure(f"SMS provider error {code}: {RECIPIENT_ERRORS[code]}", status=response.status_code)
        if response.status_code == 401:
            # our credentials, not the message: keep it for when the operator fixes the token
            return TransientFailure("the SMS provider refused our credentials (check the auth token)", status=401)
        reason = f"{text} (code {code})" if code else str(text)
        return classify_http(response.status_code, reason[:300], response.headers.get("Retry-After"))

