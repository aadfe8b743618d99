"""The waitlist through the gateway: the desk puts patients on it, a cancellation offers the slot, the first
to accept books it and the next is answered 409; branches are kept apart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from tests.e2e.test_records_over_http import SH01, enrol
from tests.harness import wait_for
from tests.integration.records_support import events


def test_a_cancelled_slot_goes_to_the_first_waiting_patient_who_accepts(suite):
    today = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date()
    tomorrow = (today + timedelta(days=1)).isoformat()
    slots = suite.call("POST", "/v1/appointments/slots", role="front_desk", branches=SH01,
                       json={"branch": "SH01", "doctor_id": "dr-wang", "on": tomorrow, "start": "15:00",
                             "end": "15:30", "slot_minutes": 30}).json()["items"]
    holder, first, second = enrol(suite, 41), enrol(suite, 42), enrol(suite, 43)
    booked = suite.call("POST", "/v1/appointments", role="front_desk", branches=SH01,
                        json={"member_id": holder, "slot_id": slots[0]["id"]}).json()
    window = {"branch": "SH01", "earliest_on": today.isoformat(), "latest_on": (today + timedelta(days=7)).isoformat()}
    for member in (first, second):
        joined = suite.call("POST", "/v1/waitlist", role="front_desk", branches=SH01,
                            json={"member_id": member, **window}, headers={"Idempotency-Key": f"wl-{member}"})
        assert joined.status_code == 201 and joined.json()["status"] == "waiting", joined.text
    bad = suite.call("POST", "/v1/waitlist", role="front_desk", branches=SH01,
                     json={"member_id": first, **window, "latest_on": "2020-01-01"})
    assert bad.status_code == 422
    assert suite.call("POST", "/v1/waitlist", role="front_desk", branches=("SH02",),
                      json={"member_id": first, **window}).status_code == 403
    listed = suite.call("GET", "/v1/waitlist?branch=SH01", role="customer_service", branches=SH01).json()["items"]
    assert [e["member_id"] for e in listed] == [first, second]

    assert suite.call("POST", f"/v1/appointments/{booked['id']}/cancel", role="front_desk", branches=SH01,
                      json={"reason": "patient called"}).status_code == 200
    offers = {o["member_id"]: o["offer_id"] for o in events(suite.database_urls["records"], "waitlist_slot_offered")}
    assert set(offers) == {first, second}
    taken = suite.call("POST", f"/v1/waitlist/offers/{offers[second]}/accept", role="integration",
                       headers={"Idempotency-Key": "app-accept-1"})
    assert taken.status_code == 200, taken.text
    assert taken.json()["appointment"]["member_id"] == second and taken.json()["offer"]["status"] == "accepted"
    gone = suite.call("POST", f"/v1/waitlist/offers/{offers[first]}/accept", role="integration")
    assert gone.status_code == 409 and "took this slot first" in gone.json()["error"]["message"]
    missing = suite.call("POST", "/v1/waitlist/offers/00000000-0000-4000-8000-000000000000/accept")
    assert missing.status_code == 404
    assert suite.call("POST", "/v1/waitlist/offers/not-an-id/accept").status_code == 404
    wait_for(lambda: [d for d in suite.call("GET", f"/v1/members/{first}/deliveries").json()["items"]
                      if d["journey"] == "waitlist_offer" and d["state"] == "cancelled"],
             message="the offer not sent yet is taken back")
    entry = next(e for e in listed if e["member_id"] == first)
    withdrawn = suite.call("POST", f"/v1/waitlist/{entry['id']}/withdraw", role="front_desk", branches=SH01)
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"
    assert suite.call("GET", "/v1/waitlist?branch=SH01").json()["items"] == []


def test_the_reactivation_list_is_for_customer_service_of_the_branch(suite):
    listed = suite.call("GET", "/v1/recalls/reactivation?branch=SH01", role="customer_service", branches=SH01)
    assert listed.status_code == 200 and listed.json() == {"items": []}
    assert suite.call("GET", "/v1/recalls/reactivation?branch=SH02", role="customer_service",
                      branches=SH01).status_code == 403
    assert suite.call("GET", "/v1/recalls/reactivation?branch=SH01", role="front_desk").status_code == 403
    missing = suite.call("POST", "/v1/recalls/00000000-0000-4000-8000-000000000000/reactivation-contacts",
                         role="customer_service")
    assert missing.status_code == 404
