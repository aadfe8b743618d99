"""A patient's confirm and cancel links through the gateway, as the patient gets them: the confirmation in
their inbox carries both links; opening one changes nothing; posting acts once, without a login; a cancel
link's slot goes to the waitlist; a tampered or expired link is refused and changes nothing; addresses
that try too many links are slowed down."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from services.kit import links
from tests.e2e.test_records_over_http import SH01, enrol
from tests.harness import wait_for
from tests.integration.records_support import events

SECRET = "e2e-appointment-link-secret-0123456789"
PUBLIC = "https://care.example.test"
JSON = {"Accept": "application/json"}
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def start(start_suite, **gateway):
    return start_suite(records_config={"APPOINTMENT_LINK_SECRET": SECRET},
                       notifications_config={"APPOINTMENT_LINK_SECRET": SECRET, "PUBLIC_BASE_URL": PUBLIC,
                                             "NOTIFICATIONS": {"quiet_hours": "off"}}, **gateway)


def tomorrow() -> str:
    return (datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date() + timedelta(days=1)).isoformat()


def booked(suite, number: int, slot: dict) -> tuple[str, dict]:
    member = enrol(suite, number)
    suite.call("PUT", f"/v1/members/{member}/notification-preferences", json={"channels": ["inbox"]})
    appointment = suite.call("POST", "/v1/appointments", role="front_desk", branches=SH01,
                             json={"member_id": member, "slot_id": slot["id"]})
    assert appointment.status_code in (200, 201), appointment.text
    return member, appointment.json()


def test_the_confirmation_s_links_act_once_without_a_login(start_suite, rpc):
    suite = start(start_suite)
    slots = suite.call("POST", "/v1/appointments/slots", role="front_desk", branches=SH01,
                       json={"branch": "SH01", "doctor_id": "dr-wang", "on": tomorrow(), "start": "15:00",
                             "end": "16:00", "slot_minutes": 30}).json()["items"]
    member, appointment = booked(suite, 61, slots[0])
    waiting = enrol(suite, 62)
    assert suite.call("POST", "/v1/waitlist", role="front_desk", branches=SH01, headers={"Idempotency-Key": "wl-62"},
                      json={"member_id": waiting, "branch": "SH01", "earliest_on": tomorrow(),
                            "latest_on": tomorrow()}).status_code == 201

    def confirmation():
        items = suite.call("GET", f"/v1/members/{member}/deliveries").json()["items"]
        return [d for d in items if d["journey"] == "appointment_confirmation"]

    wait_for(confirmation, message="the confirmation is queued")
    rpc().notifications.dispatch_due()
    inbox = suite.call("GET", f"/v1/members/{member}/inbox", role="integration").json()["items"]
    body = next(m["body"] for m in inbox if m["journey"] == "appointment_confirmation")
    confirm_path, cancel_path = re.findall(re.escape(PUBLIC) + r"(/a/[A-Za-z0-9_.-]+)", body)
    assert confirm_path != cancel_path

    def appointment_now():
        listed = suite.call("GET", f"/v1/appointments?member_id={member}", role="front_desk", branches=SH01).json()
        return next(a for a in listed["items"] if a["id"] == appointment["id"])

    opened = suite.http.get(suite.base_url + confirm_path, headers=BROWSER, timeout=30)  # a mail scanner, a preview
    assert opened.status_code == 200 and opened.headers["Content-Type"].startswith("text/html")
    assert '<form method="post"' in opened.text and "Confirm that you will come" in opened.text
    assert opened.headers["Cache-Control"] == "no-store" and "frame-ancestors" not in opened.text
    chinese = suite.http.get(suite.base_url + confirm_path, headers={**BROWSER, "Accept-Language": "zh-CN,zh;q=0.9"},
                             timeout=30)
    assert 'lang="zh-Hans"' in chinese.text and "确认就诊" in chinese.text  # the page speaks the reader's language
    assert suite.http.get(suite.base_url + confirm_path, headers=JSON, timeout=30).json()["used"] is False
    assert appointment_now()["confirmed_at"] is None  # opening changed nothing

    confirmed = suite.http.post(suite.base_url + confirm_path, headers=JSON, timeout=30)  # no Authorization at all
    assert confirmed.status_code == 200 and confirmed.json()["outcome"] == "confirmed", confirmed.text
    assert appointment_now()["confirmed_at"] is not None
    again = suite.http.post(suite.base_url + confirm_path, headers=JSON, timeout=30)
    assert again.status_code == 200 and again.json()["outcome"] == "already_done"

    spoilt = cancel_path[:-3] + ("AAA" if not cancel_path.endswith("AAA") else "BBB")
    refused = suite.http.post(suite.base_url + spoilt, headers=JSON, timeout=30)
    assert refused.status_code == 404 and "not valid" in refused.json()["error"]["message"]
    refused_page = suite.http.post(suite.base_url + spoilt, headers=BROWSER, timeout=30)
    assert refused_page.status_code == 404 and "not valid" in refused_page.text
    assert suite.http.post(suite.base_url + "/a/not-a-token", headers=JSON, timeout=30).status_code == 404
    expired = links.sign(SECRET, links.Claims(subject=appointment["id"], action="cancel", nonce="expired-x",
                                              expires_at=datetime.now(UTC) - timedelta(minutes=1)))
    gone = suite.http.post(f"{suite.base_url}/a/{expired}", headers=JSON, timeout=30)
    assert gone.status_code == 410 and "expired" in gone.json()["error"]["message"]
    assert appointment_now()["status"] == "booked"  # none of them changed anything

    cancelled = suite.http.post(suite.base_url + cancel_path, headers=BROWSER, timeout=30)  # the page's button
    assert cancelled.status_code == 200 and "Your appointment is cancelled" in cancelled.text
    assert appointment_now()["status"] == "cancelled"
    (offer,) = events(suite.database_urls["records"], "waitlist_slot_offered")
    assert offer["member_id"] == waiting and offer["starts_at"] == appointment["starts_at"]
    assert suite.http.post(suite.base_url + cancel_path, headers=JSON, timeout=30).json()["outcome"] == "already_done"
    assert len(events(suite.database_urls["records"], "appointment_cancelled")) == 1
    late_confirm = suite.http.post(suite.base_url + confirm_path, headers=JSON, timeout=30)
    assert late_confirm.json()["outcome"] == "already_done"  # that link was used: it never acts again


def test_an_address_trying_many_links_is_slowed_down(start_suite):
    suite = start(start_suite, RATE_LIMIT_LINKS="1/min burst 3")
    answers = [suite.http.get(f"{suite.base_url}/a/{'x' * 30}.{'A' * 43}", headers=JSON, timeout=30).status_code
               for _ in range(4)]
    assert answers == [404, 404, 404, 429]
    assert suite.call("GET", "/health", role=None).status_code == 200  # other routes are not limited by it
