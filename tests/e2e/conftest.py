"""The suite running in this process, driven over real HTTP through the gateway."""

from __future__ import annotations

import socket
from collections.abc import Iterator
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


class Client:
    """A requests session bound to the gateway's URL, with an API key for each role asked for."""

    def __init__(self, base_url: str, gateway_store: Any) -> None:
        self.base_url = base_url
        self.store = gateway_store
        self.http = requests.Session()
        self._keys: dict[tuple[str, tuple[str, ...]], str] = {}

    def key(self, role: str = "group_admin", branches: tuple[str, ...] = ("*",)) -> str:
        if (role, branches) not in self._keys:
            self._keys[(role, branches)] = issue_api_key(self.store, f"test {role}", role, branches).key
        return self._keys[(role, branches)]

    def call(self, method: str, path: str, role: str | None = "group_admin",
             branches: tuple[str, ...] = ("*",), headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        headers = dict(headers or {})
        if role is not None:
            headers.setdefault("Authorization", f"Bearer {self.key(role, branches)}")
        return self.http.request(method, self.base_url + path, headers=headers, timeout=30, **kwargs)


@pytest.fixture
def suite(start_service: Any) -> Iterator[Client]:
    """Members, notifications and the gateway on SQLite, the gateway on a free local port."""
    start_service(MembersService)
    start_service(NotificationsService)
    port = free_port()
    gateway = start_service(GatewayService, WEB_SERVER_ADDRESS=f"127.0.0.1:{port}", RPC_TIMEOUT=10)
    store = store_for(gateway.database_url)
    yield Client(f"http://127.0.0.1:{port}", store)
    store.dispose()
