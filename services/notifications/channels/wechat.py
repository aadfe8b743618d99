"""WeChat Official Account template messages.

Access token: ``POST {base_url}/cgi-bin/stable_token`` with ``{"grant_type": "client_credential",
"appid", "secret", "force_refresh": false}`` (default: several replicas share one token without
invalidating each other), or the classic ``GET /cgi-bin/token?grant_type=client_credential&appid=&secret=``
(``token_endpoint: classic``). Both answer ``{"access_token", "expires_in"}`` or ``{"errcode", "errmsg"}``.
Send: ``POST {base_url}/cgi-bin/message/template/send?access_token=TOKEN`` with ``{"touser": openid,
"template_id", "url", "data": {"first": {"value"}, "keyword1": {"value"}, "remark": {"value"}}}``; the
answer is HTTP 200 with ``{"errcode": 0, "errmsg": "ok", "msgid": ...}`` or an ``errcode``: 40001/40014/
42001 (token invalid or expired: fetch a new one and try once more), 45009/45047/-1 (rate limit, system
busy: later), 43004 (the member does not follow the account), 40003 (not an openid), 40037 (unknown
template): never.

Settings (``NOTIFICATIONS.channels.wechat``): ``base_url`` (default https://api.weixin.qq.com),
``app_id``, ``app_secret`` (secret), ``template_id`` (a notice template with first/keyword1/remark),
``templates`` (journey -> template id, optional), ``token_endpoint`` (stable or classic).
"""

from __future__ import annotations

import time
from typing import Any

from eventlet.semaphore import Semaphore

from services.notifications.channels.base import (
    Message,
    PermanentFailure,
    Receipt,
    TransientFailure,
    classify_http,
)
from services.notifications.channels.http import ProviderHttp

TOKEN_ERRORS = {40001, 40014, 42001}
TRANSIENT_ERRORS = {-1: "WeChat system busy", 45009: "WeChat API call limit reached",
                    45047: "WeChat customer message limit reached"}
PERMANENT_ERRORS = {40003: "not an openid of this account", 43004: "the member does not follow the official account",
                    40037: "WeChat does not know the template id", 47003: "the template data do not match",
                    43101: "the member refused messages from this account"}
TOKEN_MARGIN_SECONDS = 300  # refresh a token this long before WeChat says it expires


class WeChatChannel:
    name = "wechat"
    idempotent = False  # template messages take no idempotency key

    def __init__(self, settings: dict[str, Any], http: ProviderHttp | None = None) -> None:
        self.base_url = str(settings.get("base_url") or "https://api.weixin.qq.com").rstrip("/")
        self.app_id = str(settings["app_id"])
        self.app_secret = str(settings["app_secret"])
        self.template_id = settings.get("template_id")
        self.templates = dict(settings.get("templates") or {})
        self.stable = str(settings.get("token_endpoint") or "stable") != "classic"
        self.http = http or ProviderHttp()
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_lock = Semaphore(1)

    @classmethod
    def configured(cls, settings: dict[str, Any]) -> bool:
        return bool(settings.get("app_id") and settings.get("app_secret")
                    and (settings.get("template_id") or settings.get("templates")))

    def send(self, message: Message) -> Receipt:
        template_id = self.templates.get(message.journey) or self.template_id
        if not template_id:
            raise PermanentFailure(f"no WeChat template is set up for {message.journey}")
        body = {"touser": message.to, "template_id": template_id,
                "data": {"first": {"value": message.subject}, "keyword1": {"value": message.text},
                         "remark": {"value": message.extra.get("remark", "")}}}
        if message.link:
            body["url"] = message.link
        token = self.access_token()
        answer = self._post_template(token, body)
        if answer.get("errcode") in TOKEN_ERRORS:
            # another process refreshed the token or it expired early: one fresh token, one more try
            token = self.access_token(refresh_from=token)
            answer = self._post_template(token, body)
        code = answer.get("errcode", 0)
        if code == 0:
            return Receipt(provider_id=str(answer.get("msgid")) if answer.get("msgid") is not None else None)
        raise self._failure(code, str(answer.get("errmsg", "")))

    def _post_template(self, token: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.request("POST", f"{self.base_url}/cgi-bin/message/template/send",
                                     params={"access_token": token}, json=body)
        return self._json(response)

    def access_token(self, refresh_from: str | None = None) -> str:
        """A valid token, fetched when missing, near expiry, or when ``refresh_from`` was refused."""
        with self._token_lock:
            fresh = self._token and time.monotonic() < self._token_expires
            if fresh and (refresh_from is None or self._token != refresh_from):
                return self._token  # type: ignore[return-value]
            force = refresh_from is not None and self._token == refresh_from
            if self.stable:
                response = self.http.request("POST", f"{self.base_url}/cgi-bin/stable_token", json={
                    "grant_type": "client_credential", "appid": self.app_id, "secret": self.app_secret,
                    "force_refresh": force})
            else:
                response = self.http.request("GET", f"{self.base_url}/cgi-bin/token", params={
                    "grant_type": "client_credential", "appid": self.app_id, "secret": self.app_secret})
            answer = self._json(response)
            if not answer.get("access_token"):
                code = answer.get("errcode")
                if code in (-1, 45009):
                    raise TransientFailure(f"WeChat token endpoint busy (errcode {code})")
                # a wrong app id or secret: every message would fail; keep them for when it is fixed
                raise TransientFailure(f"WeChat refused our credentials (errcode {code}); check app_id and app_secret")
            self._token = str(answer["access_token"])
            expires_in = float(answer.get("expires_in") or 7200)
            self._token_expires = time.monotonic() + max(expires_in - TOKEN_MARGIN_SECONDS, expires_in / 2)
            return self._token

    def _json(self, response: Any) -> dict[str, Any]:
        if response.status_code != 200:
            raise classify_http(response.status_code, response.reason or "error", response.headers.get("Retry-After"))
        try:
            answer = response.json()
        except ValueError:
            raise TransientFailure("WeChat answered something that is not JSON") from None
        return answer if isinstance(answer, dict) else {}

    def _failure(self, code: int, errmsg: str) -> Exception:
        if code in TRANSIENT_ERRORS:
            return TransientFailure(f"{TRANSIENT_ERRORS[code]} (errcode {code})")
        if code in TOKEN_ERRORS:
            return TransientFailure(f"WeChat refused a fresh access token (errcode {code})")
        reason = PERMANENT_ERRORS.get(code) or errmsg.split(" rid:")[0][:200] or "refused"
        return PermanentFailure(f"WeChat: {reason} (errcode {code})")
