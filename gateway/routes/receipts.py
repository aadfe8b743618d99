"""Providers' delivery receipts: SMS status callbacks, WeChat template-send reports, LINE webhooks.

These routes are public to the gateway (no staff token or API key: a provider cannot hold one) and are
authenticated by the provider's own signature instead, checked by notifications, which holds each
provider's secret (``services/notifications/rules/receipts.py``). A bad signature is 401 and changes
nothing. The body goes on as the provider sent it (form, XML or JSON). SMS signatures cover the URL the
provider posted to: ``PUBLIC_BASE_URL`` (the gateway as the world reaches it) and the path, so the gateway
behind an ingress checks what the provider signed.
"""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request, Response

from gateway.http import route
from gateway.upstream import Upstream
from services.notifications.schemas import ReceiptOutcomeSchema

TAGS = ("receipts",)
SIGNATURE_HEADERS = ("X-Twilio-Signature", "X-Line-Signature")
RESPONSES = {200: ReceiptOutcomeSchema, 400: None, 401: None}


def callback(request: Request, public_url: str) -> dict[str, Any]:
    """What notifications needs to check and read a provider callback."""
    path = request.path + (f"?{request.query_string.decode('latin-1')}" if request.query_string else "")
    url = (public_url.rstrip("/") + path) if public_url else request.base_url + path[len(request.path):]
    try:
        body = (getattr(request, "raw_body", None) or b"").decode("utf-8")
    except UnicodeDecodeError:
        body = ""  # not the provider's (all three send UTF-8): its signature will not match either
    return {"url": url, "body": body, "query": dict(request.args.items()),
            "headers": {name: request.headers[name] for name in SIGNATURE_HEADERS if name in request.headers}}


class ReceiptRoutes:
    receipts = Upstream("notifications")

    def _callback(self, request: Request) -> dict[str, Any]:
        return callback(request, str(self.config.get("PUBLIC_BASE_URL") or ""))

    @route("POST", "/v1/receipts/sms", provider_signed=True, tags=TAGS, responses=RESPONSES,
           summary="SMS status callback (Twilio's form post, signed with X-Twilio-Signature)")
    def sms_receipt(self, request: Request) -> Any:
        return self.receipts.provider_receipt("sms", self._callback(request))

    @route("POST", "/v1/receipts/line", provider_signed=True, tags=TAGS, responses=RESPONSES,
           summary="LINE webhook (signed with X-Line-Signature): delivery completions mark messages delivered")
    def line_receipt(self, request: Request) -> Any:
        return self.receipts.provider_receipt("line", self._callback(request))

    @route("POST", "/v1/receipts/wechat", provider_signed=True, tags=TAGS,
           responses={200: "text/plain", 400: None, 401: None},
           summary="WeChat server URL events (signature, timestamp, nonce in the query): template-send reports")
    def wechat_receipt(self, request: Request) -> Response:
        self.receipts.provider_receipt("wechat", self._callback(request))
        return Response("success", content_type="text/plain; charset=utf-8")  # what WeChat waits for

    @route("GET", "/v1/receipts/wechat", provider_signed=True, tags=TAGS,
           responses={200: "text/plain", 401: None},
           summary="WeChat's check of the server URL: echostr back when the signature is ours")
    def wechat_server_check(self, request: Request) -> Response:
        echo = self.receipts.wechat_server_check(dict(request.args.items()))
        return Response(echo, content_type="text/plain; charset=utf-8")
