"""Tiers, benefits, segments, merges and lifecycle through the gateway, as the desk, managers and the HIS
would use them. Activity arrives as the events points publishes (built from its contracts)."""

from __future__ import annotations

import uuid

import pytest
from nameko.standalone.events import event_dispatcher

from services.kit.clock import isoformat, utcnow
from services.points.events import EVENTS
from tests.harness import service_config, wait_for

PERSON = {"full_name": "Wang Fang", "phone": "13800138111", "birth_date": "1979-06-15", "home_branch": "SH01"}
OTHER = {"full_name": "Wang Fang", "phone": "13900139222", "birth_date": "1980-01-02", "home_branch": "SH01"}


@pytest.fixture
def publish(amqp_uri):
    dispatch = event_dispatcher(service_config(amqp_uri))

    def send(event_type: str, **changes: object) -> None:
        """Points' ``event_type`` (its contract's sample with ``changes``), checked as points checks it."""
        payload = EVENTS.wire(event_type, {**EVENTS[event_type].sample, **changes})
        dispatch("points", event_type, {"event_id": str(uuid.uuid4()), "occurred_at": isoformat(utcnow()), **payload})

    return send


def top_up(publish, member_id: str, amount_minor: int) -> None:
    publish("topped_up", member_id=uuid.UUID(member_id), topup_id=str(uuid.uuid4().int % 10**15),
            amount_minor=amount_minor, bonus_minor=0, currency="CNY", branch="SH01")


def enrol(suite, body=PERSON) -> str:
    response = suite.call("POST", "/v1/members", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_a_top_up_makes_silver_and_the_desk_uses_and_undoes_the_free_cleaning(suite, publish):
    member = enrol(suite)
    top_up(publish, member, 300_000)
    tier = wait_for(lambda: (t := suite.call("GET", f"/v1/members/{member}/tier").json())["tier"] == "silver" and t,
                    message="silver")
    assert tier["activity"]["largest_top_up_minor"] == 300_000 and tier["next"]["tier"] == "gold"
    history = suite.call("GET", f"/v1/members/{member}/tier-history", role="front_desk", branches=("SH01",))
    assert [(h["to_tier"], h["reason"]) for h in history.json()["items"]] == [("silver", "top_up")]

    desk = {"role": "front_desk", "branches": ("SH01",)}
    use = f"/v1/members/{member}/benefits/free_cleaning/use"
    first = suite.call("POST", use, json={"visit_id": "v-100", "branch": "SH01"}, **desk)
    assert first.status_code == 200 and first.json()["remaining"] == 0
    assert suite.call("POST", use, json={"visit_id": "v-100", "branch": "SH01"}, **desk).json() == first.json()
    refused = suite.call("POST", use, json={"visit_id": "v-101", "branch": "SH01"}, **desk)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "conflict"
    undone = suite.call("POST", f"/v1/members/{member}/benefits/free_cleaning/undo", json={"visit_id": "v-100"}, **desk)
    assert undone.status_code == 200 and undone.json()["remaining"] == 1
    benefits = suite.call("GET", f"/v1/members/{member}/benefits", role="clinician", branches=("SH01",)).json()
    assert benefits["quotas"][0]["remaining"] == 1 and benefits["booking_horizon_days"] == 3
    assert suite.call("POST", use, json={"visit_id": "v-102"}, role="clinician").status_code == 403
    assert suite.call("POST", use, json={}, **desk).status_code == 422

    price = suite.call("POST", f"/v1/members/{member}/price", json={
        "items": [{"category": "cleaning", "amount_minor": 20_000}], "on": "2026-01-05"}, **desk)
    assert price.status_code == 200 and price.json()["net_minor"] == 19_000
    assert suite.call("GET", "/v1/members/00000000-0000-0000-0000-000000000000/tier").status_code == 404


def test_the_programme_is_read_by_staff_and_changed_by_group_admins_only(suite):
    current = suite.call("GET", "/v1/programme/tiers", role="front_desk", branches=("SH01",))
    assert current.status_code == 200 and current.json()["source"] == "file"
    programme = current.json()["programme"]
    programme["tiers"][1]["thresholds"]["visits_12m"] = 5
    body = {"programme": programme, "note": "five visits make silver", "expected_version": 0}
    assert suite.call("PUT", "/v1/programme/tiers", json=body, role="branch_manager").status_code == 403
    assert suite.call("POST", "/v1/programme/tiers/preview", json=body, role="branch_manager").status_code == 403
    preview = suite.call("POST", "/v1/programme/tiers/preview", json=body)
    assert preview.status_code == 200 and preview.json()["version"] == 0
    assert {"members", "up", "down", "unchanged", "already_short", "moves"} <= set(preview.json())
    stored = suite.call("PUT", "/v1/programme/tiers", json=body, headers={"Idempotency-Key": "prog-7"})
    assert stored.status_code == 200 and stored.json()["version"] == 1
    stale = suite.call("PUT", "/v1/programme/tiers", json=body)
    assert stale.status_code == 409
    programme["tiers"][1]["thresholds"]["visits_12m"] = 50
    invalid = suite.call("PUT", "/v1/programme/tiers", json={"programme": programme})
    assert invalid.status_code == 422 and "tiers.2.thresholds" in invalid.json()["error"]["fields"]
    invalid = suite.call("POST", "/v1/programme/tiers/preview", json={"programme": programme})
    assert invalid.status_code == 422 and "tiers.2.thresholds" in invalid.json()["error"]["fields"]


def test_segments_are_listed_for_customer_service_by_branch(suite):
    members = [enrol(suite), enrol(suite, OTHER)]
    night = suite.call("POST", "/v1/ops/members/nightly")
    assert night.status_code == 200 and night.json()["jobs"]["segments"]["finished"]
    service = {"role": "customer_service", "branches": ("SH01",)}
    page = suite.call("GET", "/v1/segments/C/members", params={"branch": "SH01", "limit": 1}, **service).json()
    rest = suite.call("GET", "/v1/segments/C/members", params={"branch": "SH01", "cursor": page["next_cursor"]},
                      **service).json()
    assert {m["member_id"] for m in page["items"] + rest["items"]} == set(members)
    assert suite.call("GET", "/v1/segments/C/members", **service).status_code == 403  # give a branch
    assert suite.call("GET", "/v1/segments/C/members", params={"branch": "SH01"}, role="front_desk").status_code == 403
    assert suite.call("GET", "/v1/segments/Z/members", params={"branch": "SH01"}, **service).status_code == 422
    assert suite.call("POST", "/v1/ops/members/nightly", role="branch_manager").status_code == 403


def test_merge_freeze_and_close_need_their_roles(suite, publish):
    survivor, duplicate = enrol(suite), enrol(suite, OTHER)
    top_up(publish, duplicate, 1_000_000)
    wait_for(lambda: suite.call("GET", f"/v1/members/{duplicate}/tier").json()["tier"] == "gold", message="gold")
    body = {"merged_id": duplicate, "reason": "one patient, two cards"}
    assert suite.call("POST", f"/v1/members/{survivor}/merge", json=body, role="front_desk").status_code == 403
    merged = suite.call("POST", f"/v1/members/{survivor}/merge", json=body, role="branch_manager",
                        branches=("SH01",), headers={"Idempotency-Key": "merge-9"})
    assert merged.status_code == 200 and merged.json()["survivor_tier"] == "gold"
    assert suite.call("GET", f"/v1/members/{duplicate}").json()["merged_into"] == survivor
    audit = suite.call("GET", f"/v1/members/{survivor}/merges", role="auditor").json()["items"]
    assert [m["merge_id"] for m in audit] == [merged.json()["merge_id"]]
    reversed_ = suite.call("POST", f"/v1/merges/{merged.json()['merge_id']}/reverse", json={"reason": "mistake"})
    assert reversed_.status_code == 200 and reversed_.json()["reversed_at"]

    freeze = {"reason": "dispute", "note": "bill contested"}
    assert suite.call("POST", f"/v1/members/{survivor}/freeze", json=freeze, role="front_desk").status_code == 403
    frozen = suite.call("POST", f"/v1/members/{survivor}/freeze", json=freeze, role="customer_service",
                        branches=("SH01",))
    assert frozen.status_code == 200 and frozen.json()["status"] == "frozen"
    assert suite.call("POST", f"/v1/members/{survivor}/close", json={"reason": "erasure_request"},
                      role="customer_service").status_code == 403
    closed = suite.call("POST", f"/v1/members/{survivor}/close", json={"reason": "erasure_request"},
                        role="branch_manager", branches=("SH01",))
    assert closed.status_code == 200 and closed.json()["full_name"] is None
    history = suite.call("GET", f"/v1/members/{survivor}/status-history", role="auditor").json()["items"]
    assert [h["to_status"] for h in history] == ["closed", "frozen"]
    elsewhere = suite.call("POST", f"/v1/members/{duplicate}/freeze", json=freeze, role="branch_manager",
                           branches=("HZ01",))
    assert elsewhere.status_code == 403


def test_the_new_routes_are_in_the_api_document(suite):
    paths = set(suite.call("GET", "/openapi.json", role=None).json()["paths"])
    assert {"/v1/members/{member_id}/tier", "/v1/members/{member_id}/tier-history",
            "/v1/members/{member_id}/benefits", "/v1/members/{member_id}/benefits/{benefit}/use",
            "/v1/members/{member_id}/benefits/{benefit}/undo", "/v1/segments/{segment}/members",
            "/v1/programme/tiers", "/v1/programme/tiers/preview", "/v1/members/{member_id}/merge", "/v1/members/{member_id}/freeze",
            "/v1/members/{member_id}/close", "/v1/merges/{merge_id}/reverse"} <= paths
