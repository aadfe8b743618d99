"""Notifications through the gateway: preview, preferences, sending and following a message, the inbox."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import requests

from tests.harness import wait_for

ANNA = {"full_name": "Anna Smith", "phone": "13800138000", "birth_date": "1990-05-01", "home_branch": "SH01",
        "preferred_language": "en", "consents": {"sms": True, "marketing": True}}
DAYTIME = f"{datetime.now(UTC).year + 1}-03-10T02:00:00Z"  # 10:00 in Shanghai, after any welcome queued now


@pytest.fixture
def member(suite):
    created = suite.call("POST", "/v1/members", json=ANNA)
    assert created.status_code == 201, created.text
    return created.json()


def test_preview_a_journey_in_a_language_and_for_a_member(suite, member):
    sample = suite.call("POST", "/v1/notifications/preview", role="customer_service",
                        json={"journey": "appointment_reminder", "channel": "sms", "language": "zh-Hans"})
    assert sample.status_code == 200, sample.text
    assert sample.json()["subject"].startswith("就诊提醒") and sample.json()["language"] == "zh-Hans"
    personal = suite.call("POST", "/v1/notifications/preview",
                          json={"journey": "welcome", "channel": "email", "member_id": member["id"]}).json()
    assert personal["text"].startswith("Anna Smith, welcome to Smile Dental Group") and "<html" in personal["html"]
    bad = suite.call("POST", "/v1/notifications/preview", json={"journey": "carrier_pigeon"})
    assert bad.status_code == 422 and "journey" in bad.json()["error"]["fields"]
    assert suite.call("POST", "/v1/notifications/preview", role="front_desk",
                      json={"journey": "welcome"}).status_code == 403


def test_preferences_show_consents_and_take_a_channel_order_and_opt_outs(suite, member):
    path = f"/v1/members/{member['id']}/notification-preferences"
    shown = suite.call("GET", path, role="front_desk").json()
    assert shown["channels"] is None and shown["effective_channels"] == ["wechat", "line", "sms", "email", "inbox"]
    assert shown["consents"]["sms"] is True and shown["marketing_opt_out"] is False
    changed = suite.call("PUT", path, role="integration", json={"channels": ["sms", "inbox"], "marketing_opt_out": True},
                         headers={"Idempotency-Key": "app-prefs-1"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["effective_channels"] == ["sms", "inbox"] and changed.json()["marketing_opt_out"] is True
    assert suite.call("GET", path).json()["channels"] == ["sms", "inbox"]
    refused = suite.call("PUT", path, json={"channels": ["sms", "sms"]})
    assert refused.status_code == 422 and "channels" in refused.json()["error"]["fields"]
    assert suite.call("PUT", path, json={"channels": ["pigeon"]}).status_code == 422
    missing = "/v1/members/00000000-0000-0000-0000-000000000000/notification-preferences"
    assert suite.call("GET", missing).status_code == 404


def test_send_follow_and_cancel_a_message(suite, member, rpc):
    body = {"member_id": member["id"], "journey": "results_ready", "due_at": "2027-03-11T02:00:00Z",
            "context": {"branch": "SH01"}, "cause": "exam-4711"}
    sent = suite.call("POST", "/v1/notifications", role="integration", json=body,
                      headers={"Idempotency-Key": "his-result-4711"})
    assert sent.status_code == 201, sent.text
    again = suite.call("POST", "/v1/notifications", role="integration", json=body,
                       headers={"Idempotency-Key": "his-result-4711"})
    assert again.json()["id"] == sent.json()["id"]
    detail = suite.call("GET", f"/v1/notifications/{sent.json()['id']}").json()
    assert detail["state"] == "queued" and detail["context"] == {"branch": "SH01"}
    assert [step["state"] for step in detail["steps"]] == ["queued"]

    cancelled = suite.call("POST", f"/v1/notifications/{sent.json()['id']}/cancel", role="customer_service",
                           json={"reason": "the patient collected the results at the desk"})
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert cancelled.json()["reason"].startswith("the patient collected the results at the desk")
    twice = suite.call("POST", f"/v1/notifications/{sent.json()['id']}/cancel")
    assert twice.status_code == 422
    rpc().notifications.dispatch_due(now="2027-03-11T02:00:00Z")
    assert suite.call("GET", f"/v1/notifications/{sent.json()['id']}").json()["state"] == "cancelled"
    assert suite.call("POST", "/v1/notifications", role="front_desk", json=body).status_code == 403
    unknown = {**body, "member_id": "00000000-0000-0000-0000-000000000000"}
    assert suite.call("POST", "/v1/notifications", json=unknown).status_code == 404


def test_welcome_in_the_inbox_and_in_the_history(suite, member, rpc):
    wait_for(lambda: suite.call("GET", f"/v1/members/{member['id']}/deliveries").json()["items"],
             message="welcome queued")
    suite.call("PUT", f"/v1/members/{member['id']}/notification-preferences", json={"channels": ["inbox"]})
    rpc().notifications.dispatch_due(now=DAYTIME)
    (delivery,) = suite.call("GET", f"/v1/members/{member['id']}/deliveries").json()["items"]
    assert (delivery["journey"], delivery["state"], delivery["channel"]) == ("welcome", "delivered", "inbox")
    metrics = requests.get(f"http://127.0.0.1:{suite.metrics_ports['notifications']}/metrics", timeout=10).text
    assert 'careloop_notifications_total{channel="inbox",journey="welcome",state="delivered"}' in metrics

    inbox = suite.call("GET", f"/v1/members/{member['id']}/inbox", role="integration").json()
    assert inbox["unread"] == 1 and inbox["items"][0]["subject"] == "Welcome to Smile Dental Group"
    message_id = inbox["items"][0]["id"]
    read = suite.call("POST", f"/v1/members/{member['id']}/inbox/{message_id}/read", role="integration")
    assert read.status_code == 200 and read.json()["read_at"]
    unread = suite.call("GET", f"/v1/members/{member['id']}/inbox", params={"unread_only": "true"}).json()
    assert unread == {"items": [], "next_cursor": None, "unread": 0}
    assert suite.call("GET", f"/v1/members/{member['id']}/inbox", role="front_desk").status_code == 403
    assert suite.call("GET", f"/v1/members/{member['id']}/inbox", params={"unread_only": "maybe"}).status_code == 422


def test_festival_calendar_and_credentials(suite):
    calendar = suite.call("GET", "/v1/notifications/festivals/2027").json()
    assert {"festival": "mid_autumn", "date": "2027-09-15"} in calendar["festivals"]
    assert {"festival": "spring_festival", "date": "2027-02-06"} in calendar["festivals"]
    assert suite.call("GET", "/v1/notifications/festivals/1800").status_code == 422
    assert suite.call("GET", "/v1/notifications/festivals/next-year").status_code == 422
    for method, path in [("POST", "/v1/notifications/preview"), ("GET", "/v1/notifications/festivals/2027"),
                         ("GET", "/v1/members/x/inbox"), ("PUT", "/v1/members/x/notification-preferences")]:
        assert suite.call(method, path, role=None, json={}).status_code == 401
    spec = suite.call("GET", "/openapi.json", role=None).json()
    assert {"/v1/notifications/preview", "/v1/members/{member_id}/inbox",
            "/v1/members/{member_id}/notification-preferences"} <= set(spec["paths"])


def test_an_urgent_complaint_alerts_the_branch_and_its_managers_can_see_it(suite, member):
    complaint = suite.call("POST", "/v1/feedback", role="front_desk", branches=("SH01",), json={
        "member_id": member["id"], "kind": "complaint", "branch": "SH01", "urgent": True, "comment": "Waited 2 h"})
    assert complaint.status_code == 201, complaint.text
    path = f"/v1/feedback/{complaint.json()['id']}/alerts"

    def alerts():
        answer = suite.call("GET", path, role="branch_manager", branches=("SH01",))
        assert answer.status_code == 200, answer.text
        return answer.json()["items"]

    items = wait_for(alerts, timeout=30)
    assert {item["channel"] for item in items} == {"email", "sms"}  # urgent: every channel, even at night
    assert all(item["urgent"] and item["branch"] == "SH01" for item in items)
    assert "recipient" not in items[0] and member["phone"] not in str(items)  # the address is not shown
    assert suite.call("GET", path, role="branch_manager", branches=("SH02",)).status_code == 403
    assert suite.call("GET", path, role="front_desk", branches=("SH01",)).status_code == 403
