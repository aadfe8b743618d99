"""The provider imitations (``tests.imitations``) as a process the tests start, and a client for them."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from typing import Any

import requests

from tests.imitations import LINE_TOKEN, SMS_SID, SMS_TOKEN, WECHAT_APP_ID, WECHAT_SECRET


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Providers:
    """SMS, LINE, WeChat and SMTP imitations on local ports, scripted and read over HTTP."""

    def __init__(self) -> None:
        self.http_port, self.smtp_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.process = subprocess.Popen(
            [sys.executable, "-W", "ignore", "-m", "tests.imitations", "--http-port", str(self.http_port),
             "--smtp-port", str(self.smtp_port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.http = requests.Session()
        deadline = time.monotonic() + 20
        while True:
            try:
                self.http.get(self.url + "/_imitation/requests", timeout=2)
                break
            except requests.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"provider imitations did not start: {self.process.stdout.read()!r}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def reset(self) -> None:
        self.http.post(self.url + "/_imitation/reset", json={}, timeout=5).raise_for_status()

    def script(self, api: str, *responses: dict[str, Any]) -> None:
        """The next answers of ``api`` (sms, line, wechat_send, wechat_token), before its normal ones."""
        self.http.post(self.url + "/_imitation/script", json={"api": api, "responses": list(responses)},
                       timeout=5).raise_for_status()

    def revoke_tokens(self) -> None:
        self.http.post(self.url + "/_imitation/revoke-tokens", json={}, timeout=5).raise_for_status()

    def slow_down(self, seconds: float) -> None:
        self.http.post(self.url + "/_imitation/delay", json={"seconds": seconds}, timeout=5).raise_for_status()

    def requests(self, api: str | None = None) -> list[dict[str, Any]]:
        found = self.http.get(self.url + "/_imitation/requests", timeout=5).json()
        return [request for request in found if api is None or request["api"] == api]

    def accepted(self, api: str) -> list[dict[str, Any]]:
        return [request for request in self.requests(api) if request["status"] in (200, 201)]

    def mail(self) -> list[dict[str, Any]]:
        return self.http.get(self.url + "/_imitation/smtp", timeout=5).json()

    def channels(self, *names: str) -> dict[str, dict[str, Any]]:
        """``NOTIFICATIONS.channels`` pointing the named channels at the imitations."""
        every = {
            "sms": {"base_url": self.url, "account_sid": SMS_SID, "auth_token": SMS_TOKEN, "from": "+14155550100"},
            "email": {"host": "127.0.0.1", "port": self.smtp_port, "security": "none",
                      "from": "care@smile-dental.example", "from_name": "Smile Dental", "timeout": 5},
            "line": {"base_url": self.url, "channel_access_token": LINE_TOKEN},
            "wechat": {"base_url": self.url, "app_id": WECHAT_APP_ID, "app_secret": WECHAT_SECRET,
                       "template_id": "tmpl-notice-1"},
        }
        return {name: every[name] for name in (names or tuple(every))}
