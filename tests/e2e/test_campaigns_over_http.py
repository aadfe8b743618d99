"""Points campaigns through the gateway: a group admin creates, changes and ends one; a paid visit earns it while
it runs; branch managers only read."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from nameko.standalone.events import event_dispatcher

from services.records import events as records_events
from services.records.events import VisitCompleted
from tests.e2e.test_points_over_http import DESK, MANAGER, as_, enrol
from tests.harness import service_config, wait_for

ADMIN = ("group_admin", ("*",))
CLEANING_X2 = {"code": "clean-x2", "name": "Cleaning month", "multiplier": "2", "categories": ["cleaning"],
               "starts_on": "2026-11-01"}


def paid_cleaning(suite, amqp_uri: str, member: str, bill_id: str) -> None:
    completed = records_events.EVENTS.wire("visit_completed", {
        **VisitCompleted.sample, "visit_id": uuid.uuid4(), "member_id": uuid.UUID(member), "doctor_id": "d1",
        "kind": "return", "bill_id": bill_id, "completed_at": datetime(2026, 11, 23, 1, tzinfo=UTC),
        "items": [{"category": "cleaning", "code": "C1", "amount_minor": 300_00}],
        "payments": [{"method": "mobile", "amount_minor": 300_00}], "qualifying_minor": 300_00,
        "first_visit": False, "first_paid_visit": False})
    event_dispatcher(service_config(amqp_uri))("records", "visit_completed", {
        "event_id": f"e2e-{bill_id}", "occurred_at": "2026-11-23T01:00:00Z", **completed})


def balance(suite, member: str) -> int:
    return as_(suite, DESK, "GET", f"/v1/members/{member}/points").json()["balance"]


def test_a_campaign_created_changed_and_ended_over_http_applies_to_the_visits_in_between(suite, amqp_uri):
    assert as_(suite, MANAGER, "POST", "/v1/campaigns", key="mgr-c1", json=CLEANING_X2).status_code == 403
    bad = as_(suite, ADMIN, "POST", "/v1/campaigns", key="adm-c0", json={**CLEANING_X2, "multiplier": "0.5"})
    assert bad.status_code == 422 and "multiplier" in bad.json()["error"]["fields"], bad.text

    created = as_(suite, ADMIN, "POST", "/v1/campaigns", key="adm-c1", json=CLEANING_X2)
    assert created.status_code == 201, created.text
    assert (created.json()["state"], created.json()["version"]) == ("active", 1)
    replayed = as_(suite, ADMIN, "POST", "/v1/campaigns", key="adm-c1", json=CLEANING_X2)
    assert replayed.status_code == 201 and replayed.json() == created.json()

    member = enrol(suite)
    paid_cleaning(suite, amqp_uri, member, "HIS-camp-1")
    wait_for(lambda: balance(suite, member) == 610, message="spend 300 + visit 10 + the campaign's 300")

    changed = as_(suite, ADMIN, "PUT", "/v1/campaigns/clean-x2", key="adm-c2",
                  json={**CLEANING_X2, "multiplier": "3", "expected_version": 1})
    assert changed.status_code == 200 and changed.json()["version"] == 2, changed.text
    stale = as_(suite, ADMIN, "PUT", "/v1/campaigns/clean-x2", key="adm-c3",
                json={**CLEANING_X2, "multiplier": "4", "expected_version": 1})
    assert stale.status_code == 409, stale.text
    read = as_(suite, MANAGER, "GET", "/v1/campaigns/clean-x2")
    assert read.status_code == 200 and [v["version"] for v in read.json()["versions"]] == [1, 2]

    ended = as_(suite, ADMIN, "POST", "/v1/campaigns/clean-x2/end", key="adm-c4")
    assert ended.status_code == 200 and ended.json()["state"] == "ended", ended.text
    listed = as_(suite, MANAGER, "GET", "/v1/campaigns", params={"state": "ended"}).json()["items"]
    assert [c["code"] for c in listed] == ["clean-x2"]
    paid_cleaning(suite, amqp_uri, member, "HIS-camp-2")
    wait_for(lambda: balance(suite, member) == 920, message="spend 300 + visit 10, no campaign")

    assert as_(suite, ADMIN, "GET", "/v1/campaigns/no%20such").status_code == 404  # not a campaign code's shape
    assert as_(suite, DESK, "GET", "/v1/campaigns").status_code == 403
    spec = suite.call("GET", "/openapi.json", role=None).json()
    assert {"get", "post"} <= set(spec["paths"]["/v1/campaigns"])
    assert "put" in spec["paths"]["/v1/campaigns/{campaign_code}"]
