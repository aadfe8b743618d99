"""The suite running in this process, driven over real HTTP through the gateway."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from gateway.auth import issue_api_key, webhooks
from gateway.service import GatewayService
from services.interfaces.service import InterfacesService
from services.members.service import MembersService
from services.notifications.service import NotificationsService
from services.points.service import PointsService
from services.records.service import RecordsService
from tests.harness import store_for

STRONG_PASSWORD = "correct horse battery staple"

# Generous limits for the suite (the rate-limit tests start a gateway with tight ones), and an Argon2
# cost at OWASP's minimum so that sign-ins in tests stay quick.
GATEWAY_TEST_CONFIG = {
    "RPC_TIMEOUT": 10,
    "AUTH_CACHE_SECONDS": 0,
    "RATE_LIMIT_CREDENTIAL": "1000/s burst 5000",
    "RATE_LIMIT_ADDRESS": "1000/s burst 5000",
    "RATE_LIMIT_LOGIN": "1000/s burst 5000",
    "RATE_LIMIT_LINKS": "1000/s burst 5000",
    "ARGON2_MEMORY_KIB": 19456,
    "ARGON2_TIME_COST": 2,
    "ARGON2_PARALLELISM": 1,
}


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
    _integrations: dict[tuple[str, tuple[str, ...]], tuple[str, str]] = field(default_factory=dict)
    containers: list[Any] = field(default_factory=list)

    def stop(self) -> None:
        """Stop this suite's services (before another suite takes their queues, e.g. a round trip's second)."""
        for container in self.containers:
            container.stop()

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

    # -- people -----------------------------------------------------------------------------

    def create_staff(self, role: str, branches: tuple[str, ...] = ("*",), password: str = STRONG_PASSWORD,
                     username: str | None = None, change_required: bool = False) -> dict[str, Any]:
        """A staff account made by a group admin through the API."""
        username = username or f"{role.replace('_', '-')}-{uuid.uuid4().hex[:8]}"
        response = self.call("POST", "/v1/staff", json={
            "username": username, "display_name": f"Test {role}", "role": role, "branches": list(branches),
            "password": password, "password_change_required": change_required})
        assert response.status_code == 201, response.text
        return response.json()

    def login(self, username: str, password: str = STRONG_PASSWORD, **kwargs: Any) -> Any:
        return self.http.post(self.base_url + "/v1/auth/login", json={"username": username, "password": password},
                              timeout=30, **kwargs)

    def token(self, role: str, branches: tuple[str, ...] = ("*",)) -> str:
        """An access token of a new staff member with ``role`` at ``branches``."""
        user = self.create_staff(role, branches)
        response = self.login(user["username"])
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def as_token(self, token: str, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        return self.http.request(method, self.base_url + path, headers=headers, timeout=30, **kwargs)

    # -- signed webhooks ----------------------------------------------------------------------

    def integration(self, role: str = "integration", branches: tuple[str, ...] = ("*",)) -> tuple[str, str]:
        """(integration id, signing secret) of a webhook integration with ``role``."""
        if (role, branches) not in self._integrations:
            slug = f"test-{role.replace('_', '-')}-{uuid.uuid4().hex[:6]}"
            _view, secret = webhooks.create_integration(self.gateway_store, slug, f"Test {role}", role,
                                                        ",".join(branches), None, None)
            self._integrations[(role, branches)] = (slug, secret)
        return self._integrations[(role, branches)]

    def signed(self, method: str, path: str, body: Any = None, role: str = "integration",
               branches: tuple[str, ...] = ("*",), timestamp: int | None = None,
               headers: dict[str, str] | None = None, integration: tuple[str, str] | None = None) -> Any:
        """A request signed as a webhook integration would sign it."""
        slug, secret = integration or self.integration(role, branches)
        raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        signed = webhooks.signed_headers(slug, secret, raw, timestamp)
        all_headers = {"Content-Type": "application/json", **signed, **(headers or {})}
        return self.http.request(method, self.base_url + path, data=raw, headers=all_headers, timeout=30)


@pytest.fixture
def start_suite(start_service: Any, tmp_path: Any) -> Iterator[Callable[..., Suite]]:
    """Start members (on ``members_database_url`` if given, e.g. a seeded benchmark database; with
    ``members_config``), notifications
    (with ``notifications_config``), points (with ``points_config``), records (with ``records_config``),
    interfaces (with ``interfaces_config``) and a gateway (with config ``overrides``) on the test's database:
    PostgreSQL unless ``--backends`` chose SQLite first, or the test takes ``backend``."""
    stores: list[Any] = []

    def start(records_config: dict[str, Any] | None = None, notifications_config: dict[str, Any] | None = None,
              points_config: dict[str, Any] | None = None, interfaces_config: dict[str, Any] | None = None,
              members_database_url: str | None = None, members_config: dict[str, Any] | None = None,
              **overrides: Any) -> Suite:
        ports = {"members": free_port(), "notifications": free_port(), "points": free_port(),
                 "records": free_port(), "interfaces": free_port()}
        members = start_service(MembersService, database_url=members_database_url, METRICS_PORT=ports["members"],
                                NIGHTLY_AT="off", **(members_config or {}))
        # its scheduler's timers stay off: tests send what is due through dispatch_due at a time they choose
        extra = dict(notifications_config or {})
        notifications = start_service(NotificationsService, METRICS_PORT=ports["notifications"],
                                      **{**extra, "NOTIFICATIONS": {**extra.get("NOTIFICATIONS", {}), "scheduler": False}})
        points = start_service(PointsService, METRICS_PORT=ports["points"], **(points_config or {}))
        records = start_service(RecordsService, METRICS_PORT=ports["records"], **(records_config or {}))
        interfaces = start_service(InterfacesService, METRICS_PORT=ports["interfaces"],
                                   **{"IMPORT_DIR": str(tmp_path / f"imports-{len(stores)}"), **(interfaces_config or {})})
        port = free_port()
        gateway = start_service(GatewayService, WEB_SERVER_ADDRESS=f"127.0.0.1:{port}",
                                **{**GATEWAY_TEST_CONFIG, **overrides})
        store = store_for(gateway.database_url)
        stores.append(store)
        return Suite(f"http://127.0.0.1:{port}", store,
                     {"members": members.database_url, "notifications": notifications.database_url,
                      "points": points.database_url, "records": records.database_url,
                      "interfaces": interfaces.database_url,
                      "gateway": gateway.database_url}, ports,
                     containers=[gateway, interfaces, records, points, notifications, members])

    yield start
    for store in stores:
        store.dispose()


@pytest.fixture
def suite(start_suite: Callable[..., Suite]) -> Suite:
    """Members, notifications, points, records, interfaces and the gateway (PostgreSQL), the gateway on a free local port."""
    return start_suite()
