"""Branch scoping: a person of branch A cannot list data of branch B; their branches reach the services."""

from __future__ import annotations

import pytest

LI_NA = {"full_name": "Li Na", "phone": "13900139000", "birth_date": "1985-02-03", "home_branch": "SH01"}


def test_a_token_of_branch_a_cannot_list_members_of_branch_b(suite):
    token = suite.token("front_desk", ("SH01",))
    assert suite.call("POST", "/v1/members", json={**LI_NA, "home_branch": "SH02"}).status_code == 201
    refused = suite.as_token(token, "GET", "/v1/members", params={"q": "li na", "branch": "SH02"})
    assert refused.status_code == 403
    assert refused.json()["error"]["details"] == {"branch": "SH02"}
    both = suite.as_token(token, "GET", "/v1/members", params={"q": "li na", "branch": "SH01,SH02"})
    assert both.status_code == 403
    own = suite.as_token(token, "GET", "/v1/members", params={"q": "li na", "branch": "SH01"})
    assert own.status_code == 200 and own.json()["items"] == []
    group = suite.token("front_desk", ("*",))
    everyone = suite.as_token(group, "GET", "/v1/members", params={"q": "li na", "branch": "SH02"})
    assert [m["home_branch"] for m in everyone.json()["items"]] == ["SH02"]


def test_the_identity_and_branches_of_a_token_reach_the_service(suite):
    token = suite.token("front_desk", ("SH01",))
    refused = suite.as_token(token, "POST", "/v1/members", json={**LI_NA, "home_branch": "SH02"})
    assert refused.status_code == 403  # the members service judged it, from the identity it received
    assert "SH02" in refused.json()["error"]["message"]
    assert suite.as_token(token, "POST", "/v1/members", json=LI_NA).status_code == 201


def test_an_api_key_of_branch_a_is_scoped_the_same_way(suite):
    refused = suite.call("GET", "/v1/members", role="integration", branches=("SH01",),
                         params={"q": "li", "branch": "HZ01"})
    assert refused.status_code == 403


@pytest.mark.parametrize("path", ["/v1/follow-ups", "/v1/kpis"])
def test_a_token_of_branch_a_cannot_list_follow_ups_or_kpis_of_branch_b(start_service, path):
    from gateway.service import GatewayService
    from services.members.service import MembersService
    from services.records.service import RecordsService
    from tests.e2e.conftest import GATEWAY_TEST_CONFIG, Suite, free_port
    from tests.harness import store_for

    start_service(RecordsService)
    start_service(MembersService)
    port = free_port()
    gateway = start_service(GatewayService, WEB_SERVER_ADDRESS=f"127.0.0.1:{port}", **GATEWAY_TEST_CONFIG)
    store = store_for(gateway.database_url)
    try:
        suite = Suite(f"http://127.0.0.1:{port}", store, {"gateway": gateway.database_url}, {})
        manager = suite.token("branch_manager", ("SH01",))
        refused = suite.as_token(manager, "GET", path, params={"branch": "SH02"})
        assert refused.status_code == 403, refused.text
        own = suite.as_token(manager, "GET", path)
        if own.status_code == 200:
            body = own.json()
            rows = body.get("items", body if isinstance(body, list) else [])
            assert all(row.get("branch") in (None, "SH01") for row in rows if isinstance(row, dict))
    finally:
        store.dispose()
