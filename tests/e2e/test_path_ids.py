"""Every id in a gateway path is checked by its type before any RPC: a malformed one is 404 (or 422).

The walk sends each malformed kind to every route with a path parameter, on a gateway with **no service
running**: any request that reached for a service would be a 503, so a 404/422 with the standard error body
also proves that nothing was asked of a service. A well-formed id does go on (503 there). The routes are
found from ``GatewayService`` and the shapes from ``gateway.paths``, so a route added later is walked too.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
import requests

from gateway.auth import issue_api_key
from gateway.openapi import routes_of
from gateway.paths import UUID_EXAMPLE, path_params
from gateway.permissions import roles_with
from gateway.service import GatewayService
from tests.e2e.conftest import GATEWAY_TEST_CONFIG, free_port
from tests.harness import store_for

ROUTES = [(name, route) for name, route in routes_of(GatewayService) if path_params(route.url)]
MALFORMED = {
    "SQL-ish quote": "1' OR 1=1",
    "NUL": "\x00",
    "60 x": "x" * 60,
    "Unicode blank": "\u3000",
    "no-break space": "\u00a0",
    "over-long": UUID_EXAMPLE * 30,
    "UUID with an Arabic-Indic digit": "\u0663" + UUID_EXAMPLE[1:],  # uuid.UUID() would take it
    "UUID with a trailing newline": UUID_EXAMPLE + "\n",
}


def concrete(url: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        url = url.replace(f"<{name}>", quote(value, safe=""))
    return url


def good_values(route: Any) -> dict[str, str]:
    return {name: path_type.example for name, path_type in route.path_types.items()}


@pytest.fixture
def lone_gateway(start_service: Any) -> Any:
    """A gateway and nothing behind it, with an API key per role."""
    port = free_port()
    gateway = start_service(GatewayService, WEB_SERVER_ADDRESS=f"127.0.0.1:{port}", **GATEWAY_TEST_CONFIG)
    store = store_for(gateway.database_url)
    keys: dict[str, str] = {}

    def key(role: str) -> str:
        if role not in keys:
            keys[role] = issue_api_key(store, f"walker {role}", role, ("*",)).key
        return keys[role]

    yield f"http://127.0.0.1:{port}", key
    store.dispose()


def error_of(response: requests.Response) -> dict[str, Any]:
    """The error's code and message: the REST error body, or a FHIR route's OperationOutcome."""
    body = response.json()
    if body.get("resourceType") == "OperationOutcome":
        issue = body["issue"][0]
        return {"code": {"not-found": "not_found", "processing": "invalid"}.get(issue["code"], issue["code"]),
                "message": issue["diagnostics"]}
    return body["error"]


def send(base: str, key: Any, route: Any, path: str) -> requests.Response:
    headers = {} if route.public else {"Authorization": f"Bearer {key(roles_with(route.permission)[0])}"}
    body = {"json": {}} if route.method in ("POST", "PUT", "PATCH") else {}
    return requests.request(route.method, base + path, headers=headers, timeout=30, **body)


def test_every_placeholder_of_every_route_has_a_declared_type():
    assert len(ROUTES) >= 80
    for _name, route in ROUTES:
        assert set(route.path_types) == set(path_params(route.url)), route.url
    with pytest.raises(ValueError, match="declare the type"):
        from gateway.http import Route

        Route("GET", "/v1/things/<thing_id>", "members:read")


def test_every_malformed_kind_on_every_route_is_refused_before_any_rpc(lone_gateway):
    base, key = lone_gateway
    refused = 0
    for name, route in ROUTES:
        for placeholder, path_type in route.path_types.items():
            for kind, value in MALFORMED.items():
                values = {**good_values(route), placeholder: value}
                response = send(base, key, route, concrete(route.url, values))
                where = f"{route.method} {route.url} ({name}) <{placeholder}> = {kind}"
                assert response.status_code == path_type.status, (where, response.status_code, response.text)
                error = error_of(response)
                assert error["code"] == ("not_found" if path_type.status == 404 else "invalid"), where
                assert "\x00" not in error["message"] and len(error["message"]) < 300, where  # not echoed
                refused += 1
    assert refused >= len(ROUTES) * len(MALFORMED)


@pytest.mark.parametrize("method, path", [
    ("GET", f"/v1/members/{UUID_EXAMPLE}"),
    ("GET", f"/v1/feedback/{UUID_EXAMPLE.upper()}/alerts"),
    ("GET", "/v1/coupons/k7mp-qr4x-t9"),
    ("POST", f"/v1/members/{UUID_EXAMPLE}/benefits/free_cleaning/use"),
    ("GET", "/v1/notifications/festivals/2027"),
    ("GET", "/v1/segments/B/members"),
])
def test_a_well_formed_id_goes_on_to_the_service(lone_gateway, method, path):
    base, key = lone_gateway
    response = requests.request(method, base + path, headers={"Authorization": f"Bearer {key('group_admin')}"},
                                timeout=30, **({"json": {}} if method == "POST" else {}))
    assert response.status_code == 503, response.text  # it asked a service, and none is running


def test_a_malformed_feedback_id_is_404_not_an_empty_list(suite):
    """The defect as found: ``1' OR 1=1`` as a feedback id was answered 200 with no alerts."""
    for value in ("1' OR 1=1", "\x00", "x" * 60, "\u3000"):
        response = suite.call("GET", f"/v1/feedback/{quote(value, safe='')}/alerts")
        assert response.status_code == 404, (value, response.text)
        assert response.json()["error"]["code"] == "not_found"
