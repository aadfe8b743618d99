"""The gateway's bound of requests in flight (gateway.admission): beyond it a request is answered 503 at once,
while the probes and the metrics are still answered, and the requests already running finish as usual.

The requests are held in flight for real: the test locks members' table in PostgreSQL, so every member read
waits on the lock inside the members service until the test lets go.
"""

from __future__ import annotations

import re

import eventlet
import pytest
import requests
from sqlalchemy import create_engine, text

from tests.harness import wait_for

LI_NA = {"full_name": "Li Na", "phone": "13900139000", "birth_date": "1985-02-03", "home_branch": "SH01",
         "consents": {"sms": True}}


def _metric(suite, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", suite.call("GET", "/metrics").text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


@pytest.mark.backends("postgresql")
def test_beyond_the_bound_a_request_is_shed_and_the_probes_still_answer(start_suite):
    suite = start_suite(GATEWAY_MAX_IN_FLIGHT=2)
    member_id = suite.call("POST", "/v1/members", json=LI_NA).json()["id"]
    shed_before = _metric(suite, "careloop_gateway_requests_shed_total")
    engine = create_engine(suite.database_urls["members"])
    lock = engine.connect()
    try:
        lock.execute(text("LOCK TABLE members IN ACCESS EXCLUSIVE MODE"))
        headers = {"Authorization": f"Bearer {suite.key()}"}
        held = [eventlet.spawn(requests.get, f"{suite.base_url}/v1/members/{member_id}", headers=headers, timeout=30)
                for _ in range(2)]
        # both are running at once, each waiting on the lock in the members service
        wait_for(lambda: _metric(suite, "careloop_gateway_requests_in_flight") == 2, timeout=20,
                 message="two member reads in flight at once")

        shed = suite.call("GET", f"/v1/members/{member_id}")
        assert shed.status_code == 503
        assert shed.headers["Retry-After"] == "1"
        assert shed.json()["error"]["code"] == "unavailable"
        assert shed.json()["error"]["fields"] == {} and "try again" in shed.json()["error"]["message"]
        assert _metric(suite, "careloop_gateway_requests_shed_total") == shed_before + 1
        # a mutating request is shed before its Idempotency-Key is claimed: the same key works afterwards
        refused = suite.call("PATCH", f"/v1/members/{member_id}", json={"preferred_language": "es"},
                             headers={"Idempotency-Key": "shed-then-retried"})
        assert refused.status_code == 503

        # outside the bound: the probes and the scrape
        assert suite.call("GET", "/health", role=None).json() == {"status": "ok"}
        assert suite.call("GET", "/ready", role=None).status_code == 200
        assert all(not request.dead for request in held)  # still waiting on the lock
    finally:
        lock.rollback()
        lock.close()
        engine.dispose()
    assert [request.wait().status_code for request in held] == [200, 200]
    wait_for(lambda: _metric(suite, "careloop_gateway_requests_in_flight") == 0, message="nothing in flight")
    retried = suite.call("PATCH", f"/v1/members/{member_id}", json={"preferred_language": "es"},
                         headers={"Idempotency-Key": "shed-then-retried"})
    assert retried.status_code == 200 and "Idempotent-Replayed" not in retried.headers
    assert suite.call("GET", f"/v1/members/{member_id}").json()["preferred_language"] == "es"
