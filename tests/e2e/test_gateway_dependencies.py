"""The gateway when a dependency fails: 503 with Retry-After (never 500), and /ready naming what is down.

The broker and the gateway's PostgreSQL are reached through a ``TcpProxy`` (``tests.nodes``) that the test
cuts — connections reset, new ones refused, as when the broker or database goes away — and restores; the
machine's shared broker and database are never touched. A service "away" is one that is not running.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
import requests

from gateway.auth import issue_api_key
from gateway.service import GatewayService
from services.members.service import MembersService
from tests.e2e.conftest import GATEWAY_TEST_CONFIG, free_port
from tests.harness import PG_ADMIN_URL, RABBIT_HOST, store_for, wait_for
from tests.nodes import TcpProxy

MEMBER = {"full_name": "Lin Yue", "phone": "13700137000", "birth_date": "1988-05-06", "home_branch": "SH01"}


class Gateway:
    """A gateway on a free port with a group admin's API key."""

    def __init__(self, container: Any, port: int) -> None:
        self.container = container
        self.url = f"http://127.0.0.1:{port}"
        store = store_for(container.database_url)
        try:
            self.key = issue_api_key(store, "dependency tests", "group_admin", ("*",)).key
        finally:
            store.dispose()

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.url + path, headers={"Authorization": f"Bearer {self.key}"}, timeout=30, **kwargs)

    def post(self, path: str, body: Any) -> requests.Response:
        return requests.post(self.url + path, json=body, timeout=30, headers={
            "Authorization": f"Bearer {self.key}", "Idempotency-Key": uuid.uuid4().hex})


def start_gateway(start_service: Any, **overrides: Any) -> Gateway:
    port = free_port()
    settings = {**GATEWAY_TEST_CONFIG, "READY_SERVICES": ["members"], "READY_TIMEOUT": 2, **overrides}
    return Gateway(start_service(GatewayService, WEB_SERVER_ADDRESS=f"127.0.0.1:{port}", **settings), port)


def assert_unavailable(response: requests.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json()["error"]["code"] == "unavailable"


@pytest.fixture
def broker_proxy(amqp_uri: str) -> Any:
    host, port = RABBIT_HOST.split(":")
    with TcpProxy(int(port), host) as proxy:
        yield proxy, amqp_uri.replace(f"@{RABBIT_HOST}/", f"@127.0.0.1:{proxy.port}/")


def test_broker_unreachable_is_503_with_retry_after_and_ready_names_the_broker(start_service, broker_proxy):
    proxy, proxied_uri = broker_proxy
    start_service(MembersService)  # on the broker directly: only the gateway loses it
    gateway = start_gateway(start_service, AMQP_URI=proxied_uri)
    member = gateway.post("/v1/members", MEMBER)
    assert member.status_code == 201, member.text
    member_id = member.json()["id"]

    proxy.cut()  # the gateway's connections reset, new ones refused (ECONNREFUSED)
    started = time.monotonic()
    assert_unavailable(gateway.get(f"/v1/members/{member_id}"))
    answered_in = time.monotonic() - started
    assert answered_in < 2.5, answered_in  # at once (~0.2 s), not after nameko's connection retries (~3 s)
    print(f"\n503 with the broker cut answered in {answered_in:.2f} s")
    assert_unavailable(gateway.post("/v1/members", {**MEMBER, "phone": "13700137001"}))
    ready = requests.get(gateway.url + "/ready", timeout=30)
    assert ready.status_code == 503 and ready.headers["Retry-After"]
    body = ready.json()
    assert body["status"] == "not ready" and "broker" in body["down"] and "members" in body["down"]
    assert body["checks"]["broker"].startswith("down") and body["checks"]["database"] == "ok"
    assert requests.get(gateway.url + "/health", timeout=30).status_code == 200  # the process itself is fine

    proxy.restore()
    wait_for(lambda: gateway.get(f"/v1/members/{member_id}").status_code == 200, timeout=30,
             message="the gateway to reach the broker again")
    wait_for(lambda: requests.get(gateway.url + "/ready", timeout=30).status_code == 200, timeout=30,
             message="/ready to say ready")


def test_a_service_away_is_503_with_retry_after_and_ready_names_it(start_service, rpc):
    members = start_service(MembersService)
    gateway = start_gateway(start_service, RPC_TIMEOUT=2)
    member_id = gateway.post("/v1/members", MEMBER).json()["id"]
    members.stop()  # its queue stays; nobody consumes it

    assert_unavailable(gateway.get(f"/v1/members/{member_id}"))
    ready = requests.get(gateway.url + "/ready", timeout=30)
    assert ready.status_code == 503
    assert ready.json()["down"] == ["members"] and ready.json()["checks"]["broker"] == "ok"


def test_a_service_never_started_is_503(start_service):
    gateway = start_gateway(start_service, READY_SERVICES=["members", "no-such-service"])
    assert_unavailable(gateway.get(f"/v1/members/{uuid.uuid4()}"))  # members is not running: unknown service
    ready = requests.get(gateway.url + "/ready", timeout=30).json()
    assert set(ready["down"]) == {"members", "no-such-service"}


@pytest.fixture
def pg_proxy() -> Any:
    host_port = PG_ADMIN_URL.split("@", 1)[1].split("/", 1)[0]
    host, _, port = host_port.partition(":")
    with TcpProxy(int(port or 5432), host) as proxy:
        yield proxy, host_port


def test_gateway_database_unreachable_is_503_and_ready_names_the_database(start_service, databases, pg_proxy):
    proxy, host_port = pg_proxy
    start_service(MembersService)
    url = databases.fresh("postgresql", "gateway").replace(f"@{host_port}/", f"@127.0.0.1:{proxy.port}/")
    gateway = start_gateway(start_service, database_url=url)
    member_id = gateway.post("/v1/members", MEMBER).json()["id"]

    proxy.cut()  # the gateway's database connections reset, new ones refused
    assert_unavailable(gateway.get(f"/v1/members/{member_id}"))  # authentication reads the database
    assert_unavailable(gateway.post("/v1/members", {**MEMBER, "phone": "13700137002"}))
    ready = requests.get(gateway.url + "/ready", timeout=30)
    assert ready.status_code == 503 and ready.json()["down"] == ["database"]

    proxy.restore()  # the pool replaces its dead connections
    wait_for(lambda: gateway.get(f"/v1/members/{member_id}").status_code == 200, timeout=30,
             message="the gateway's database to be back")
    assert requests.get(gateway.url + "/ready", timeout=30).status_code == 200
