"""Sending through the channels as a member would be reached: retries on transient answers, failures
with their reason on permanent ones, suppression recorded when a rule says no — real service, broker,
both databases, and the provider imitations."""

from __future__ import annotations

import json

from sqlalchemy import text

from services.notifications import schedule
from tests.harness import store_for

NOW = "2027-03-10T02:00:00Z"  # 10:00 in Shanghai: outside quiet hours
LI = {"full_name": "Li Na", "phone": "13900139000", "birth_date": "1985-02-03", "home_branch": "SH01",
      "preferred_language": "zh-Hans", "email": "li.na@example.com",
      "consents": {"sms": True, "email": True, "marketing": True}}


def results_ready(s, member_id: str, **extra) -> dict:
    return s.rpc.notifications.schedule({"member_id": member_id, "journey": "results_ready",
                                         "due_at": NOW, "context": {"branch": "SH01"}, **extra})


def outbox(url: str, event_type: str) -> list[dict]:
    store = store_for(url)
    try:
        with store.transaction() as connection:  # through the process's SQLite gate, as the service
            rows = connection.execute(text("SELECT payload FROM kit_outbox WHERE event_type = :t"), {"t": event_type})
            return [json.loads(row[0]) for row in rows]
    finally:
        store.dispose()


def test_sms_rate_limited_then_accepted_is_sent_once_after_a_retry(suite):
    s = suite()
    member = s.enrol(**LI)
    s.rpc.notifications.set_preferences(member["id"], {"channels": ["sms"]})
    s.providers.script("sms", {"status": 429, "headers": {"Retry-After": "120"},
                               "body": {"code": 20429, "message": "Too Many Requests", "status": 429}})
    delivery = results_ready(s, member["id"])

    assert s.dispatch(NOW).get("retried") == 1
    waiting = s.rpc.notifications.get_delivery(delivery["id"])
    assert waiting["state"] == "queued" and waiting["attempts"] == 1
    assert "429" in waiting["reason"] and waiting["due_at"] >= "2027-03-10T02:02:00Z"  # Retry-After honoured
    s.dispatch("2027-03-10T02:01:59Z")
    assert len(s.providers.requests("sms")) == 1  # not before its time

    s.dispatch(waiting["due_at"])
    sent = s.rpc.notifications.get_delivery(delivery["id"])
    assert sent["state"] == "sent" and sent["attempts"] == 2 and sent["provider_id"].startswith("SM")
    assert [r["status"] for r in s.providers.requests("sms")] == [429, 201]
    assert sent["reason"] is None and sent["language"] == "zh-Hans"
    assert "检查结果" in s.providers.accepted("sms")[0]["body"]["Body"]
    events = [e for e in outbox(s.notifications.database_url, "notification_sent") if e["delivery_id"] == sent["id"]]
    assert events == [{**events[0], "member_id": member["id"], "journey": "results_ready", "channel": "sms"}]


def test_a_sent_message_whose_event_breaks_its_contract_is_not_recorded_sent_and_announces_nothing(
        suite, monkeypatch):
    s = suite()
    member = s.enrol(**LI)
    s.rpc.notifications.set_preferences(member["id"], {"channels": ["sms"]})
    right = schedule.sent_event  # the emitter made wrong: the delivery id as a string
    monkeypatch.setattr(schedule, "sent_event", lambda delivery: {**right(delivery), "delivery_id": str(delivery.id)})
    delivery = results_ready(s, member["id"])

    assert s.dispatch(NOW).get("retried") == 1  # the provider took it, but the outcome could not be written
    waiting = s.rpc.notifications.get_delivery(delivery["id"])
    assert waiting["state"] == "queued" and waiting["sent_at"] is None
    assert waiting["reason"] == "retrying: unexpected error (ContractBroken)"
    assert outbox(s.notifications.database_url, "notification_sent") == []

    monkeypatch.undo()
    s.dispatch(waiting["due_at"])
    assert s.rpc.notifications.get_delivery(delivery["id"])["state"] == "sent"
    assert [e["delivery_id"] for e in outbox(s.notifications.database_url, "notification_sent")] == [delivery["id"]]


def test_sms_refused_with_400_fails_with_the_reason_and_is_never_retried(suite):
    s = suite()
    member = s.enrol(**LI)
    s.rpc.notifications.set_preferences(member["id"], {"channels": ["sms"]})
    s.providers.script("sms", {"status": 400, "body": {"code": 21614, "status": 400,
                                                       "message": "'To' number is not a valid mobile number"}})
    delivery = results_ready(s, member["id"])

    assert s.dispatch(NOW).get("failed") == 1
    failed = s.rpc.notifications.get_delivery(delivery["id"])
    assert failed["state"] == "failed" and failed["channel"] == "sms"
    assert failed["reason"] == "SMS provider error 21614: not a mobile number"
    s.dispatch("2027-03-12T02:00:00Z")  # days later: still nothing more
    assert len(s.providers.requests("sms")) == 1
    (event,) = [e for e in outbox(s.notifications.database_url, "notification_failed")
                if e["delivery_id"] == delivery["id"]]
    assert event["reason"] == failed["reason"] and event["channel"] == "sms"


def test_a_member_without_sms_consent_gets_no_sms_and_the_suppression_is_recorded(suite):
    s = suite()
    member = s.enrol(**{**LI, "consents": {"sms": False, "email": False}})
    s.rpc.notifications.set_preferences(member["id"], {"channels": ["sms"]})
    delivery = results_ready(s, member["id"])
    asked_on_sms = s.rpc.notifications.schedule({"member_id": member["id"], "journey": "results_ready",
                                                 "due_at": NOW, "channel": "sms", "cause": "r-2"})

    assert s.dispatch(NOW).get("suppressed") == 2
    for one in (delivery, asked_on_sms):
        suppressed = s.rpc.notifications.get_delivery(one["id"])
        assert suppressed["state"] == "suppressed"
        assert suppressed["reason"].startswith("no_consent")
        assert suppressed["steps"][-1]["detail"].startswith("no_consent")
    assert s.providers.requests("sms") == []


def test_without_any_push_consent_the_message_goes_to_the_inbox(suite):
    s = suite()
    member = s.enrol(**{**LI, "consents": {}})
    delivery = results_ready(s, member["id"])
    s.dispatch(NOW)
    done = s.rpc.notifications.get_delivery(delivery["id"])
    assert done["state"] == "delivered" and done["channel"] == "inbox" and done["delivered_at"] == NOW
    assert s.providers.requests() == []
    page = s.rpc.notifications.inbox(member["id"])
    assert page["unread"] >= 1
    (message,) = [m for m in page["items"] if m["delivery_id"] == delivery["id"]]
    assert message["subject"] == "您的检查结果已出" and "Shanghai Jing'an" in message["body"]
    assert s.rpc.notifications.mark_read(member["id"], message["id"])["read_at"] is not None
    unread = s.rpc.notifications.inbox(member["id"], unread_only=True)
    assert message["id"] not in [m["id"] for m in unread["items"]] and unread["unread"] == page["unread"] - 1


def test_email_goes_through_smtp_in_the_members_language(suite):
    s = suite()
    member = s.enrol(**{**LI, "preferred_language": "es"})
    s.rpc.notifications.set_preferences(member["id"], {"channels": ["email"]})
    delivery = results_ready(s, member["id"])
    s.dispatch(NOW)
    sent = s.rpc.notifications.get_delivery(delivery["id"])
    assert sent["state"] == "sent" and sent["channel"] == "email" and sent["language"] == "es"
    (mail,) = [m for m in s.providers.mail() if m["subject"] == "Sus resultados están listos"]
    assert mail["to"] == ["li.na@example.com"] and mail["language"] == "es"
    assert mail["message_id"] == sent["provider_id"] == f"<{delivery['id']}@smile-dental.example>"
    assert "Shanghai Jing'an" in mail["text"] and "<html" in mail["html"]


def test_an_unknown_mailbox_fails_and_a_busy_one_is_retried(suite):
    s = suite()
    unknown = s.enrol(**{**LI, "email": "unknown@example.com"})
    busy = s.enrol(**{**LI, "email": "busy@example.com", "phone": "13700137000", "full_name": "Wang Fang"})
    for member in (unknown, busy):
        s.rpc.notifications.set_preferences(member["id"], {"channels": ["email"]})
    first, second = results_ready(s, unknown["id"]), results_ready(s, busy["id"])
    s.dispatch(NOW)
    failed = s.rpc.notifications.get_delivery(first["id"])
    assert failed["state"] == "failed" and failed["reason"].startswith("SMTP 550")
    retried = s.rpc.notifications.get_delivery(second["id"])
    assert retried["state"] == "queued" and retried["reason"].startswith("retrying: SMTP 451")


def test_marketing_needs_consent_and_stops_at_the_weekly_cap(suite):
    s = suite(marketing_weekly_cap=2)
    member = s.enrol(**LI)
    no_marketing = s.enrol(**{**LI, "phone": "13700137000", "full_name": "Wang Fang",
                              "consents": {"sms": True}})
    days = ["2027-03-10", "2027-03-11", "2027-03-12"]
    for day in days:
        for who in (member, no_marketing):
            s.rpc.notifications.schedule({"member_id": who["id"], "journey": "member_day", "cause": day,
                                          "due_at": NOW, "context": {"day": day}})
    s.dispatch(NOW)
    states = sorted(d["state"] for d in s.deliveries(member["id"], "member_day"))
    assert states == ["sent", "sent", "suppressed"]
    (capped,) = [d for d in s.deliveries(member["id"], "member_day") if d["state"] == "suppressed"]
    assert capped["reason"].startswith("cap")
    assert {d["reason"].split(":")[0] for d in s.deliveries(no_marketing["id"], "member_day")} == {"no_consent"}
    # a week later the cap has room again
    s.rpc.notifications.schedule({"member_id": member["id"], "journey": "member_day", "cause": "next-week",
                                  "due_at": "2027-03-17T02:00:01Z", "context": {"day": "2027-03-18"}})
    s.dispatch("2027-03-17T02:00:01Z")
    assert [d["state"] for d in s.deliveries(member["id"], "member_day") if d["due_at"] > NOW] == ["sent"]


def test_the_same_cause_asked_twice_gives_one_message(suite):
    s = suite()
    member = s.enrol(**LI)
    first = results_ready(s, member["id"], cause="result-77")
    again = results_ready(s, member["id"], cause="result-77")
    assert again["id"] == first["id"]
    assert len(s.deliveries(member["id"], "results_ready")) == 1
