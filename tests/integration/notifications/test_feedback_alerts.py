"""Negative feedback alerts the branch's staff: records' ``feedback_submitted`` published on the run's broker,
the alerts sent through the SMTP and SMS imitations, once per feedback and address — both databases."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.notifications.service import NotificationsService
from services.notifications.staff_alerts import ALERTS
from tests.harness import events_handled, query, wait_for
from tests.integration.notifications.conftest import Suite, notification_settings

REPO = Path(__file__).resolve().parents[3]
MANAGER = "manager.sh01@example.com"
MANAGER_SMS = "+8613800000101"


def feedback(**facts: Any) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "occurred_at": "2026-11-23T08:00:00Z", "feedback_id": str(uuid.uuid4()),
            "member_id": str(uuid.uuid4()), "visit_id": None, "branch": "SH01", "kind": "survey",
            "satisfaction": None, "nps": None, "urgent": False, **facts}


def later(hours: float = 0) -> str:
    """A scheduler moment on the real clock (handlers judge quiet hours by it), ``hours`` from now."""
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")


@pytest.fixture
def alerting(start_service: Callable[..., Any], imitations: Any, backend: str, rpc: Callable[..., Any],
             amqp_uri: str, tmp_path: Path) -> Suite:
    """Notifications alone, with the demo group except that HZ01 names nobody to alert and SH02's addresses
    are ones the SMTP imitation refuses (``busy``: 451, try later; ``unknown``: 550, never)."""
    group = yaml.safe_load((REPO / "config" / "group.yml").read_text())
    del group["branches"]["HZ01"]["alerts"]
    group["branches"]["SH02"]["alerts"] = {"email": ["busy.sh02@example.com", "unknown.sh02@example.com"]}
    group_file = tmp_path / "group.yml"
    group_file.write_text(yaml.safe_dump(group, allow_unicode=True))
    notifications = start_service(NotificationsService, backend, GROUP_FILE=str(group_file),
                                  **notification_settings(imitations, ("sms", "email")))
    return Suite(rpc(), imitations, None, notifications, amqp_uri)


def handled(s: Suite, count: int) -> None:
    wait_for(lambda: s.handled("on_feedback_submitted") >= count, message=f"{count} feedback events handled")


def alerts_of(s: Suite, feedback_id: str) -> list[dict[str, Any]]:
    return s.rpc.notifications.feedback_alerts(feedback_id)["items"]


def test_an_urgent_complaint_mails_and_texts_the_manager_once_however_often_it_is_announced(alerting):
    s = alerting
    complaint = feedback(kind="complaint", urgent=True, satisfaction="very_dissatisfied")
    s.publish("records", "feedback_submitted", complaint)
    handled(s, 1)

    assert s.dispatch(later()).get("alerts_sent") == 2
    (mail,) = s.providers.mail()
    assert mail["to"] == [MANAGER] and mail["subject"] == "紧急投诉：请在30分钟内回复（Shanghai Jing'an）"
    assert f"/v1/feedback/{complaint['feedback_id']}" in mail["text"] and complaint["member_id"] not in mail["text"]
    (sms,) = s.providers.accepted("sms")
    assert sms["body"]["To"] == MANAGER_SMS and "紧急投诉" in sms["body"]["Body"]
    assert f"/v1/feedback/{complaint['feedback_id']}" in sms["body"]["Body"]

    duplicates = events_handled("notifications", "on_feedback_submitted", "duplicate")
    s.publish("records", "feedback_submitted", complaint)  # redelivered
    s.publish("records", "feedback_submitted", {**complaint, "event_id": str(uuid.uuid4())})  # re-announced
    handled(s, 2)
    wait_for(lambda: events_handled("notifications", "on_feedback_submitted", "duplicate") == duplicates + 1,
             message="the redelivery acknowledged as a duplicate")
    assert not any(key.startswith("alerts_") for key in s.dispatch(later()))
    assert len(s.providers.mail()) == 1 and len(s.providers.accepted("sms")) == 1
    alerts = alerts_of(s, complaint["feedback_id"])
    assert sorted((a["channel"], a["state"], a["urgent"]) for a in alerts) == [("email", "sent", True),
                                                                               ("sms", "sent", True)]
    assert all(a["provider_id"] for a in alerts)
    rows = query(s.notifications.database_url, "SELECT count(*) FROM staff_alerts WHERE feedback_id = :f",
                 f=complaint["feedback_id"])
    assert rows[0][0] == 2
    assert query(s.notifications.database_url, "SELECT count(*) FROM deliveries")[0][0] == 0  # members' history


def test_a_detractor_survey_mails_the_manager_and_a_positive_one_alerts_nobody(alerting):
    s = alerting
    detractor = feedback(nps=6, satisfaction="neutral")
    promoter = feedback(nps=7, satisfaction="satisfied")
    s.publish("records", "feedback_submitted", promoter)
    s.publish("records", "feedback_submitted", detractor)
    handled(s, 2)

    s.dispatch(later(13))  # past any quiet hours: a non-urgent alert may wait for the morning
    (mail,) = s.providers.mail()
    assert mail["to"] == [MANAGER] and "NPS：6" in mail["text"]
    assert s.providers.requests("sms") == []  # text messages are for urgent complaints only
    assert [(a["channel"], a["state"], a["urgent"]) for a in alerts_of(s, detractor["feedback_id"])] == [
        ("email", "sent", False)]
    assert alerts_of(s, promoter["feedback_id"]) == []


def test_a_complaint_where_nobody_is_configured_is_recorded_as_suppressed_and_counted(alerting):
    s = alerting
    suppressed = ALERTS.labels("HZ01", "none", "suppressed")
    before = suppressed._value.get()
    complaint = feedback(branch="HZ01", kind="complaint", urgent=True)
    s.publish("records", "feedback_submitted", complaint)
    s.publish("records", "feedback_submitted", {**complaint, "event_id": str(uuid.uuid4())})  # re-announced
    handled(s, 2)

    s.dispatch(later(13))
    assert s.providers.mail() == [] and s.providers.requests("sms") == []
    (alert,) = alerts_of(s, complaint["feedback_id"])
    assert alert["state"] == "suppressed" and alert["channel"] == "none"
    assert alert["reason"].startswith("no_recipient:")
    assert suppressed._value.get() == before + 1


def test_a_busy_mail_server_is_retried_later_and_a_refused_address_fails_with_the_reason(alerting):
    s = alerting
    complaint = feedback(branch="SH02", kind="complaint")
    s.publish("records", "feedback_submitted", complaint)
    handled(s, 1)

    outcome = s.dispatch(later(13))
    assert outcome.get("alerts_retried") == 1 and outcome.get("alerts_failed") == 1
    alerts = {a["state"]: a for a in alerts_of(s, complaint["feedback_id"])}
    assert set(alerts) == {"queued", "failed"}
    assert alerts["queued"]["attempts"] == 1 and alerts["queued"]["reason"].startswith("retrying:")
    assert alerts["failed"]["attempts"] == 1 and "550" in alerts["failed"]["reason"]
    assert alerts["queued"]["due_at"] > later(13)  # backoff: not before its time
