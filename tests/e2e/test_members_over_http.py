"""Members through the gateway, as the front desk and the HIS would use it."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
import requests

from gateway.auth import revoke_api_key
from tests.harness import scalar, wait_for

LI_NA = {"full_name": "Li Na", "phone": "13900139000", "birth_date": "1985-02-03", "home_branch": "SH01",
         "consents": {"sms": True}}


def member_rows(suite) -> int:
    return scalar(suite.database_urls["members"], "SELECT count(*) FROM members")


def test_enrol_read_find_change_and_welcome_is_recorded(suite):
    created = suite.call("POST", "/v1/members", json=LI_NA)
    assert created.status_code == 201, created.text
    member = created.json()
    assert created.headers["X-Request-Id"]
    assert suite.call("GET", f"/v1/members/{member['id']}").json() == member
    found = suite.call("GET", "/v1/members", params={"phone": "139-0013-9000"}).json()
    assert [m["id"] for m in found["items"]] == [member["id"]]
    assert found["items"][0]["phone"] == "+86139****9000"
    by_card = suite.call("GET", "/v1/members", params={"card": member["card_number"]}).json()
    assert by_card["items"][0]["id"] == member["id"]
    changed = suite.call("PATCH", f"/v1/members/{member['id']}", json={"preferred_language": "en"})
    assert changed.status_code == 200 and changed.json()["preferred_language"] == "en"
    deliveries = wait_for(lambda: suite.call("GET", f"/v1/members/{member['id']}/deliveries").json()["items"],
                          message="welcome delivery")
    assert [(d["journey"], d["state"]) for d in deliveries] == [("welcome", "queued")]


def test_idempotency_key_gives_the_same_answer_and_refuses_a_different_body(suite):
    headers = {"Idempotency-Key": "his-patient-4711"}
    first = suite.call("POST", "/v1/members", json=LI_NA, headers=headers)
    again = suite.call("POST", "/v1/members", json=LI_NA, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    other = suite.call("POST", "/v1/members", json={**LI_NA, "full_name": "Li Na Two"}, headers=headers)
    assert other.status_code == 422
    assert "idempotency_key" in other.json()["error"]["fields"]
    assert member_rows(suite) == 1


def test_duplicate_enrolment_is_409_naming_the_member(suite):
    first = suite.call("POST", "/v1/members", json=LI_NA).json()
    again = suite.call("POST", "/v1/members", json={**LI_NA, "full_name": "Someone Else"})
    assert again.status_code == 409
    error = again.json()["error"]
    assert error["code"] == "conflict"
    assert error["details"]["matches"][0]["member_id"] == first["id"]


@pytest.mark.parametrize(("body", "status", "field"), [
    ({**LI_NA, "phone": "12345"}, 422, "phone"),
    ({**LI_NA, "birth_date": (date.today() + timedelta(days=1)).isoformat()}, 422, "birth_date"),
    ({**LI_NA, "shoe_size": 38}, 422, "shoe_size"),
    ({k: v for k, v in LI_NA.items() if k != "full_name"}, 422, "full_name"),
    ({**LI_NA, "home_branch": "NOPE"}, 422, "branch"),
])
def test_invalid_enrolment_gets_a_clear_4xx_and_leaves_no_row(suite, body, status, field):
    response = suite.call("POST", "/v1/members", json=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == "invalid" and field in error["fields"] and error["message"]
    assert member_rows(suite) == 0


def test_ten_megabyte_body_is_413_and_leaves_no_row(suite):
    body = json.dumps({**LI_NA, "full_name": "x" * (10 * 1024 * 1024)})
    try:
        response = suite.call("POST", "/v1/members", data=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "too_large"
    except requests.ConnectionError:
        pass  # the gateway may answer 413 and close before the client finished sending
    assert member_rows(suite) == 0


@pytest.mark.parametrize(("data", "content_type"), [
    ("{not json", "application/json"),
    (json.dumps(LI_NA), "text/plain"),
    ("", "application/json"),
])
def test_unreadable_body_is_400(suite, data, content_type):
    response = suite.call("POST", "/v1/members", data=data, headers={"Content-Type": content_type})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
    assert member_rows(suite) == 0


def test_every_member_route_needs_credentials_and_the_right_role(suite):
    member = suite.call("POST", "/v1/members", json=LI_NA).json()
    routes = [("POST", "/v1/members"), ("GET", "/v1/members?q=li"), ("GET", f"/v1/members/{member['id']}"),
              ("PATCH", f"/v1/members/{member['id']}"), ("GET", f"/v1/members/{member['id']}/deliveries"),
              ("GET", "/metrics")]
    for method, path in routes:
        response = suite.call(method, path, role=None, json={})
        assert response.status_code == 401, (method, path)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        bad = suite.call(method, path, role=None, json={}, headers={"Authorization": "Bearer cl_nokey_nosecret"})
        assert bad.status_code == 401, (method, path)
    assert suite.call("POST", "/v1/members", role="clinician", json=LI_NA).status_code == 403
    assert suite.call("GET", f"/v1/members/{member['id']}/deliveries", role="clinician").status_code == 403
    assert suite.call("GET", "/metrics", role="front_desk").status_code == 403


def test_front_desk_enrols_only_at_its_own_branches(suite):
    refused = suite.call("POST", "/v1/members", role="front_desk", branches=("SH02",), json=LI_NA)
    assert refused.status_code == 403
    accepted = suite.call("POST", "/v1/members", role="front_desk", branches=("SH01",), json=LI_NA)
    assert accepted.status_code == 201


def test_a_revoked_key_stops_working(suite):
    key = suite.key("front_desk", ("SH01",))
    assert suite.call("GET", "/v1/members?q=li", role="front_desk", branches=("SH01",)).status_code == 200
    revoke_api_key(suite.gateway_store, key.split("_")[1])
    assert suite.call("GET", "/v1/members?q=li", role="front_desk", branches=("SH01",)).status_code == 401


def test_health_ready_metrics_and_openapi(suite):
    assert suite.call("GET", "/health", role=None).json() == {"status": "ok"}
    ready = suite.call("GET", "/ready", role=None)
    assert ready.status_code == 200
    services = ready.json()["services"]
    assert {"members", "notifications", "interfaces"} <= set(services) and set(services.values()) == {"ok"}
    suite.call("POST", "/v1/members", json=LI_NA)
    gateway_metrics = suite.call("GET", "/metrics").text
    assert 'careloop_entrypoint_latency_seconds_bucket{entrypoint="enrol_member"' in gateway_metrics
    members_metrics = requests.get(f"http://127.0.0.1:{suite.metrics_ports['members']}/metrics", timeout=10).text
    assert 'careloop_entrypoint_latency_seconds_count{entrypoint="enrol",service="members"}' in members_metrics
    assert "careloop_members_enrolled_total" in members_metrics
    spec = suite.call("GET", "/openapi.json", role=None).json()
    assert spec["openapi"].startswith("3.")
    assert {"/v1/members", "/v1/members/{member_id}", "/v1/members/{member_id}/deliveries"} <= set(spec["paths"])
    enrol = spec["paths"]["/v1/members"]["post"]
    assert enrol["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Enrolment"}
    assert {"201", "401", "403", "409", "413", "422"} <= set(enrol["responses"])


def test_request_id_is_echoed_and_made_when_missing(suite):
    echoed = suite.call("GET", "/health", role=None, headers={"X-Request-Id": "desk-42"})
    assert echoed.headers["X-Request-Id"] == "desk-42"
    made = suite.call("GET", "/health", role=None, headers={"X-Request-Id": "bad id with spaces"})
    assert made.headers["X-Request-Id"] != "bad id with spaces" and len(made.headers["X-Request-Id"]) == 32
