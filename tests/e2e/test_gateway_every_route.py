"""Every route of the gateway × every role: 401 without credentials, 403 without the right, through.

The routes are discovered from ``GatewayService`` (routes added later are walked too) and the oracle is
``permissions.GRANTS``: a role holding a route's permission must get past the gateway's checks (any
answer but 401 or the gateway's permission refusal); a role without it must get that refusal.
"""

from __future__ import annotations

import re
import time
from functools import partial

import eventlet

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


def test_every_route_without_credentials_is_401_and_every_role_is_let_in_or_refused_by_grants(start_suite):
    # verified keys and sessions cached as deployed (30 s; the suite's default of 0 re-reads them on every
    # request): ~3,000 requests of 14 credentials. A session a route ends is forgotten at once all the same.
    suite = start_suite(AUTH_CACHE_SECONDS=30)
    api_keys = {role: suite.key(role) for role in ROLES}
    users = {role: suite.create_staff(role) for role in STAFF_ROLES}
    tokens = {role: suite.login(user["username"]).json()["access_token"] for role, user in users.items()}

    def as_person(role: str, method: str, path: str):
        """The answer to ``role``'s token; a route walked earlier may have ended its session (signing out, say):
        a 401 whose token no longer opens ``/v1/auth/me`` is asked again under a fresh sign-in."""
        response = call(suite, method, path, {"Authorization": f"Bearer {tokens[role]}"})
        if response.status_code == 401 and suite.as_token(tokens[role], "GET", "/v1/auth/me").status_code == 401:
            tokens[role] = suite.login(users[role]["username"]).json()["access_token"]
            response = call(suite, method, path, {"Authorization": f"Bearer {tokens[role]}"})
        return response

    # a route's requests go side by side (each credential's are its own), fewer than the gateway's bound of
    # requests in flight (max_workers 10 - 2), so that none is shed
    pool = eventlet.GreenPool(6)
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
        asks = [("anonymous", partial(call, suite, route.method, path, {})),
                ("forged", partial(call, suite, route.method, path, {"Authorization": "Bearer cl_nokey_nosecret"}))]
        if not route.webhook:  # a webhook route is walked by signature in the next test; an API key never opens it
            asks += [(f"key {role}", partial(call, suite, route.method, path, {"Authorization": f"Bearer {key}"}))
                     for role, key in api_keys.items()]
            asks += [(f"token {role}", partial(as_person, role, route.method, path)) for role in STAFF_ROLES]
        answers = dict(zip([label for label, _ask in asks], pool.imap(lambda ask: ask[1](), asks), strict=True))
        anonymous = answers.pop("anonymous")
        assert anonymous.status_code == 401, where
        assert error_of(anonymous)["code"] == "unauthenticated", where
        assert answers.pop("forged").status_code == 401, where
        for label, response in answers.items():
            role = label.split()[1]
            if allowed(role, route.permission):
                assert response.status_code != 401, (where, label, response.text)
                assert not refused_for_permission(response, route.permission), (where, label, response.text)
                assert response.status_code < 500, (where, label, response.text)
            else:
                assert refused_for_permission(response, route.permission), (where, label, response.text)
            checked += 1
    assert checked >= 30 * len(ROLES)


WEBHOOK_ROUTES = [(name, route) for name, route in ROUTES if route.webhook]


def test_every_webhook_route_takes_only_signed_requests_of_a_role_that_holds_its_permission(suite):
    assert WEBHOOK_ROUTES, "no webhook route to walk"
    now = int(time.time())
    for position, (name, route) in enumerate(WEBHOOK_ROUTES):  # one suite for them all: each route's checks are its own
        path = concrete(route.url)
        assert suite.call(route.method, path, json={}).status_code == 401, name  # an API key is not a signature
        for role in ROLES:
            # a signature covers timestamp and body, not the path: the same body signed in the same second for the
            # next route would be a replay, so each route's requests are signed a second apart
            response = suite.signed(route.method, path, {}, role=role, timestamp=now - position)
            if allowed(role, route.permission):
                assert response.status_code not in (401, 500), (name, role, response.text)
                assert not refused_for_permission(response, route.permission), (name, role)
            else:
                assert refused_for_permission(response, route.permission), (name, role, response.text)
