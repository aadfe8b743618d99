"""The suite running in this process, driven over real HTTP through the gateway."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from gateway.auth import issue_api_key
from gateway.service import GatewayService
from services.members.service import MembersService
from services.notifications.service import NotificationsService
from tests.harness import store_for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Suite:
    """A requests session bound to the gateway, an API key per role asked for, and the databases."""

    base_url: str
    gateway_store: Any
    database_urls: dict[str, str]
    metrics_ports: dict[str, int]
    http: requests.Session = field(default_factory=requests.Session)
    _keys: dict[tuple[str, tuple[str, ...]], str] = field(default_factory=dict)

    def key(self, role: str = "group_admin", branches: tuple[str, ...] = ("*",)) -> str:
        if (role, branches) not in self._keys:
            self._keys[(role, branches)] = issue_api_key(self.gateway_store, f"test {role}", role, branches).key
        return self._keys[(role, branches)]

    def call(self, method: str, path: str, role: str | None = "group_admin",
             branches: tuple[str, ...] = ("*",), headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        headers = dict(headers or {})
        if role is not None:
            headers.setdefault("Authorization", f"Bearer {self.key(role, branches)}")
        return self.http.request(method, self.base_url + path, headers=headers, timeout=30, **kwargs)


@pytest.fixture
def suite(start_service: Any) -> Iterator[Suite]:
    """Members, notifications and the gateway on SQLite, the gateway on a free local port."""
    ports = {"members": free_port(), "notifications": free_port()}
    members = start_service(MembersService, METRICS_PORT=ports["members"])
    # its scheduler's timers stay off: tests send what is due through dispatch_due at a time they choose
    notifications = start_service(NotificationsService, METRICS_PORT=ports["notifications"],
                                  NOTIFICATIONS={"scheduler": False})
    port = free_port()
    gateway = start_service(GatewayService, WEB_SERVER_ADDRESS=f"127.0.0.1:{port}", RPC_TIMEOUT=10,
                            AUTH_CACHE_SECONDS=0)
    store = store_for(gateway.database_url)
    yield Suite(f"http://127.0.0.1:{port}", store,
                {"members": members.database_url, "notifications": notifications.database_url}, ports)
    store.dispose()
