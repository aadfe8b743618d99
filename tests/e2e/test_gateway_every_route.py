"""Every route of the gateway × every role: 401 without credentials, 403 without the right, through.

The routes are discovered from ``GatewayService`` (routes added later are walked too) and the oracle is
``permissions.GRANTS``: a role holding a route's permission must get past the gateway's checks (any
answer but 401 or the gateway's permission refusal); a role without it must get that refusal.
"""

from __future__ import annotations

import re

import pytest

from gateway.auth.staff import STAFF_ROLES
from gateway.openapi import routes_of
from gateway.permissions import GRANTS, allowed
from gateway.service import GatewayService
from services.kit.caller import ROLES

ROUTES = routes_of(GatewayService)


def concrete(url: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-zA-Z_]+)>", r"walker-\1", url)


def error_of(response) -> dict:
    """The refusal's code and permission: the REST error body, or a FHIR route's OperationOutcome."""
    body = response.json()
    if body.get("resourceType") == "OperationOutcome":
        issue = body["issue"][0]
        codes = [coding["code"] for coding in issue.get("details", {}).get("coding", ())]
        return {"code": {"login": "unauthenticated"}.get(issue["code"], issue["code"]),
                "details": {"permission": codes[0]} if codes else {}}
    return body["error"]


def refused_for_permission(response, permission: str) -> bool:
    if response.status_code != 403:
        return False
    error = error_of(response)
    return error["code"] == "forbidden" and error.get("details", {}).get("permission") == permission


def call(suite, method: str, path: str, headers: dict[str, str]):
    kwargs = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
    return suite.http.request(method, suite.base_url + path, headers=headers, timeout=30, **kwargs)


def test_the_walk_covers_routes_and_the_grants_name_only_known_roles():
    assert len(ROUTES) >= 30
    assert all(set(roles) <= set(ROLES) for roles in GRANTS.values())
    for _name, route in ROUTES:
        assert route.public or route.permission in GRANTS


def test_every_route_without_credentials_is_401_and_every_role_is_let_in_or_refused_by_grants(suite):
    api_keys = {role: suite.key(role) for role in ROLES}
    users = {role: suite.create_staff(role) for role in STAFF_ROLES}
    tokens = {role: suite.login(user["username"]).json()["access_token"] for role, user in users.items()}
    checked = 0
    for name, route in ROUTES:
        path = concrete(route.url)
        where = f"{route.method} {route.url} ({name})"
        if route.provider_signed:  # a provider's callback: its signature is the credential (none here)
            assert call(suite, route.method, path, {}).status_code == 401, where
            continue
        if route.public:
            assert call(suite, route.method, path, {}).status_code not in (401, 403), where
            continue
        anonymous = call(suite, route.method, path, {})
        assert anonymous.status_code == 401, where
        assert error_of(anonymous)["code"] == "unauthenticated", where
        forged = call(suite, route.method, path, {"Authorization": "Bearer cl_nokey_nosecret"})
        assert forged.status_code == 401, where
        if route.webhook:
            continue  # walked by signature in the next test; an API key never opens a webhook route
        credentials = [(role, f"key {role}", api_keys[role]) for role in ROLES]
        credentials += [(role, f"token {role}", tokens[role]) for role in STAFF_ROLES]
        for role, label, secret in credentials:
            response = call(suite, route.method, path, {"Authorization": f"Bearer {secret}"})
            if allowed(role, route.permission):
                assert response.status_code != 401, (where, label, response.text)
                assert not refused_for_permission(response, route.permission), (where, label, response.text)
                assert response.status_code < 500, (where, label, response.text)
            else:
                assert refused_for_permission(response, route.permission), (where, label, response.text)
            checked += 1
        for role, user in users.items():  # a route that signs out (or the like) ended a session: sign in again
            if suite.as_token(tokens[role], "GET", "/v1/auth/me").status_code == 401:
                tokens[role] = suite.login(user["username"]).json()["access_token"]
    assert checked >= 30 * len(ROLES)


@pytest.mark.parametrize(("name", "route"), [(n, r) for n, r in ROUTES if r.webhook] or [pytest.param(
    None, None, marks=pytest.mark.skip(reason="no webhook route"))])
def test_every_webhook_route_takes_only_signed_requests_of_a_role_that_holds_its_permission(suite, name, route):
    path = concrete(route.url)
    assert suite.call(route.method, path, json={}).status_code == 401  # an API key is not a signature
    for role in ROLES:
        response = suite.signed(route.method, path, {}, role=role)
        if allowed(role, route.permission):
            assert response.status_code not in (401, 500), (name, role, response.text)
            assert not refused_for_permission(response, route.permission), (name, role)
        else:
            assert refused_for_permission(response, route.permission), (name, role, response.text)
