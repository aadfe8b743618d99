"""Local imitations of the providers notifications talks to, in a process of their own.

    python -m tests.imitations --http-port 18080 --smtp-port 18025

- SMS (Twilio's Messages API): ``POST /2010-04-01/Accounts/<sid>/Messages.json`` (basic auth, form body)
  -> 201 ``{"sid", "status": "queued"}``; wrong credentials 401 (code 20003).
- LINE: ``POST /v2/bot/message/push`` (Bearer token, JSON) -> 200 ``{"sentMessages": [...]}``; a repeated
  ``X-Line-Retry-Key`` that was accepted -> 409 with ``x-line-accepted-request-id``.
- WeChat: ``POST /cgi-bin/stable_token`` and ``GET /cgi-bin/token`` -> ``{"access_token", "expires_in"}``;
  ``POST /cgi-bin/message/template/send?access_token=`` -> ``{"errcode": 0, "msgid"}``, an unknown or
  revoked token -> ``{"errcode": 40001}``.
- SMTP (aiosmtpd): accepts everything except recipients starting ``unknown`` (550) or ``busy`` (451).

Tests script the next answers of an API (``POST /_imitation/script {"api": "sms", "responses":
[{"status": 429, "headers": {"Retry-After": "1"}, "body": {...}}]}``), read what arrived
(``GET /_imitation/requests``, ``GET /_imitation/smtp``), revoke WeChat tokens
(``POST /_imitation/revoke-tokens``) and start afresh (``POST /_imitation/reset``).
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import threading
import time
import uuid
from collections import defaultdict, deque
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

SMS_SID, SMS_TOKEN = "AC0123456789abcdef0123456789abcdef", "sms-secret-token"
LINE_TOKEN = "line-channel-token"
WECHAT_APP_ID, WECHAT_SECRET = "wx0123456789abcdef", "wechat-secret"


class State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        # WeChat's msgids are unique: two template sends in the same millisecond (a welcome and a report
        # sent together) must not share one, or a receipt would name both
        self.wechat_msgids = itertools.count(int(time.time() * 1000))
        self.reset()

    def reset(self) -> None:
        with getattr(self, "lock", threading.Lock()):
            self.requests: list[dict[str, Any]] = []
            self.scripts: dict[str, deque] = defaultdict(deque)
            self.line_keys: dict[str, str] = {}
            self.tokens: set[str] = set()
            self.mail: list[dict[str, Any]] = []
            self.delay = 0.0

    def next_scripted(self, api: str) -> dict[str, Any] | None:
        with self.lock:
            return self.scripts[api].popleft() if self.scripts[api] else None


STATE = State()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in separate writes: without this, 40 ms stalls

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(raw)

    def _record(self, api: str, body: Any, status: int) -> None:
        with STATE.lock:
            STATE.requests.append({"api": api, "path": urlsplit(self.path).path, "body": body, "status": status,
                                   "retry_key": self.headers.get("X-Line-Retry-Key"), "at": time.time()})

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        url = urlsplit(self.path)
        if url.path == "/_imitation/requests":
            with STATE.lock:
                return self._send(200, list(STATE.requests))
        if url.path == "/_imitation/smtp":
            with STATE.lock:
                return self._send(200, list(STATE.mail))
        if url.path == "/cgi-bin/token":
            query = {key: values[0] for key, values in parse_qs(url.query).items()}
            return self._wechat_token(query.get("appid"), query.get("secret"))
        self._send(404, {"message": "Not found"})

    def do_POST(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        raw = self._body()
        if url.path.startswith("/_imitation/"):
            return self._control(url.path, json.loads(raw or b"{}"))
        if STATE.delay:
            time.sleep(STATE.delay)
        if url.path.startswith("/2010-04-01/Accounts/") and url.path.endswith("/Messages.json"):
            return self._sms(url.path, raw)
        if url.path == "/v2/bot/message/push":
            return self._line(raw)
        if url.path == "/cgi-bin/stable_token":
            body = json.loads(raw or b"{}")
            return self._wechat_token(body.get("appid"), body.get("secret"))
        if url.path == "/cgi-bin/message/template/send":
            return self._wechat_send(url.query, raw)
        self._send(404, {"message": "Not found"})

    def _control(self, path: str, body: dict[str, Any]) -> None:
        if path == "/_imitation/reset":
            STATE.reset()
        elif path == "/_imitation/script":
            with STATE.lock:
                STATE.scripts[body["api"]].extend(body["responses"])
        elif path == "/_imitation/revoke-tokens":
            with STATE.lock:
                STATE.tokens.clear()
        elif path == "/_imitation/delay":
            STATE.delay = float(body.get("seconds", 0))
        self._send(200, {"ok": True})

    def _scripted(self, api: str, recorded: Any) -> bool:
        scripted = STATE.next_scripted(api)
        if scripted is None:
            return False
        self._record(api, recorded, scripted["status"])
        self._send(scripted["status"], scripted.get("body", {}), scripted.get("headers"))
        return True

    def _sms(self, path: str, raw: bytes) -> None:
        form = {key: values[0] for key, values in parse_qs(raw.decode()).items()}
        if self._scripted("sms", form):
            return
        expected = "Basic " + base64.b64encode(f"{SMS_SID}:{SMS_TOKEN}".encode()).decode()
        if self.headers.get("Authorization") != expected or f"/Accounts/{SMS_SID}/" not in path:
            self._record("sms", form, 401)
            return self._send(401, {"code": 20003, "message": "Authenticate", "status": 401})
        if not form.get("To", "").startswith("+") or not form.get("Body"):
            self._record("sms", form, 400)
            return self._send(400, {"code": 21211, "message": "The 'To' number is not a valid phone number.",
                                    "status": 400})
        sid = "SM" + uuid.uuid4().hex
        self._record("sms", {**form, "sid": sid}, 201)
        self._send(201, {"sid": sid, "status": "queued", "to": form["To"]})

    def _line(self, raw: bytes) -> None:
        body = json.loads(raw or b"{}")
        key = self.headers.get("X-Line-Retry-Key")
        if self._scripted("line", body):
            return
        if self.headers.get("Authorization") != f"Bearer {LINE_TOKEN}":
            self._record("line", body, 401)
            return self._send(401, {"message": "Authentication failed due to the following reason: invalid token."})
        with STATE.lock:
            accepted = STATE.line_keys.get(key) if key else None
        if accepted:
            self._record("line", body, 409)
            return self._send(409, {"message": "The retry key is already accepted"},
                              {"x-line-accepted-request-id": accepted})
        request_id = uuid.uuid4().hex
        if key:
            with STATE.lock:
                STATE.line_keys[key] = request_id
        self._record("line", body, 200)
        self._send(200, {"sentMessages": [{"id": str(uuid.uuid4().int)[:18], "quoteToken": uuid.uuid4().hex}]},
                   {"x-line-request-id": request_id})

    def _wechat_token(self, app_id: str | None, secret: str | None) -> None:
        if self._scripted("wechat_token", {"appid": app_id}):
            return
        if app_id != WECHAT_APP_ID or secret != WECHAT_SECRET:
            self._record("wechat_token", {"appid": app_id}, 200)
            return self._send(200, {"errcode": 40013, "errmsg": "invalid appid"})
        token = "tok_" + uuid.uuid4().hex
        with STATE.lock:
            STATE.tokens.add(token)
        self._record("wechat_token", {"appid": app_id}, 200)
        self._send(200, {"access_token": token, "expires_in": 7200})

    def _wechat_send(self, query: str, raw: bytes) -> None:
        body = json.loads(raw or b"{}")
        token = (parse_qs(query).get("access_token") or [""])[0]
        if self._scripted("wechat_send", body):
            return
        with STATE.lock:
            valid = token in STATE.tokens
        if not valid:
            self._record("wechat_send", body, 200)
            return self._send(200, {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid or "
                                    "not latest rid: 0"})
        self._record("wechat_send", body, 200)
        with STATE.lock:
            msgid = next(STATE.wechat_msgids)
        self._send(200, {"errcode": 0, "errmsg": "ok", "msgid": msgid})


class MailHandler:
    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802
                          rcpt_options: Any) -> str:
        if address.startswith("unknown"):
            return "550 5.1.1 User unknown"
        if address.startswith("busy"):
            return "451 4.7.1 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        mail = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        parts = {part.get_content_type(): part.get_content() for part in mail.walk() if not part.is_multipart()}
        with STATE.lock:
            STATE.mail.append({"peer": list(session.peer), "from": envelope.mail_from, "to": list(envelope.rcpt_tos), "subject": mail["Subject"],
                               "message_id": mail["Message-ID"], "language": mail["Content-Language"],
                               "text": parts.get("text/plain"), "html": parts.get("text/html")})
        return "250 Message accepted for delivery"


def serve(http_port: int, smtp_port: int) -> None:
    from aiosmtpd.controller import Controller

    smtp = Controller(MailHandler(), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    server = ThreadingHTTPServer(("127.0.0.1", http_port), Handler)
    server.daemon_threads = True
    print(f"imitations ready http={http_port} smtp={smtp_port}", flush=True)
    try:
        server.serve_forever()
    finally:
        smtp.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--smtp-port", type=int, required=True)
    arguments = parser.parse_args()
    serve(arguments.http_port, arguments.smtp_port)
