"""Outbound webhook subscriptions over HTTP: a group admin subscribes (the secret shown once), a host off the
allowlist is 422 and stores nothing, the list and the delivery log answer, a stop is a stop; other roles 403."""

from __future__ import annotations

import pytest

from tests.harness import scalar


@pytest.fixture
def suite(start_suite):
    return start_suite(interfaces_config={"WEBHOOK_ALLOWED_HOSTS": "crm.example.org"})


def test_subscribe_list_log_and_stop(suite):
    made = suite.call("POST", "/v1/subscriptions", json={"integration": "crm-east", "event_type": "tier_changed",
                                                         "target_url": "https://crm.example.org/hooks"},
                      headers={"Idempotency-Key": "sub-1"})
    assert made.status_code == 201, made.text
    subscription = made.json()
    assert subscription["secret"].startswith("whsec_") and subscription["active"] is True
    refused = suite.call("POST", "/v1/subscriptions", json={"integration": "crm-east", "event_type": "tier_changed",
                                                            "target_url": "http://169.254.169.254/latest"})
    assert refused.status_code == 422 and "target_url" in refused.json()["error"]["fields"]
    assert scalar(suite.database_urls["interfaces"], "SELECT count(*) FROM webhook_subscriptions") == 1

    listed = suite.call("GET", "/v1/subscriptions?integration=crm-east").json()["items"]
    assert [s["id"] for s in listed] == [subscription["id"]] and "secret" not in listed[0]
    log = suite.call("GET", f"/v1/subscriptions/{subscription['id']}/deliveries")
    assert log.status_code == 200 and log.json() == {"items": [], "next_cursor": None}
    assert suite.call("GET", f"/v1/subscriptions/{subscription['id']}/deliveries", role="auditor").status_code == 200
    assert suite.call("POST", "/v1/subscriptions", role="branch_manager", json={}).status_code == 403

    stopped = suite.call("DELETE", f"/v1/subscriptions/{subscription['id']}")
    assert stopped.status_code == 200 and stopped.json()["active"] is False
    missing = suite.call("POST", f"/v1/subscriptions/{subscription['id']}/deliveries/"
                                 "00000000-0000-4000-8000-000000000000/replay")
    assert missing.status_code == 404
