"""Quiet hours in the group's zone (Asia/Shanghai; default 21:00-08:00): a message due at night waits
for the morning, on both databases, with the scheduler driven through the night by ``now``."""

from __future__ import annotations

import pytest

from services.kit.caller import Identity
from services.kit.errors import Forbidden

ANNA = {"full_name": "Anna Smith", "phone": "13800138000", "birth_date": "1990-05-01", "home_branch": "SH01",
        "preferred_language": "en", "consents": {"sms": True}}


def test_a_message_due_at_22_30_local_is_sent_at_08_00_and_not_before(suite):
    s = suite()
    member = s.enrol(**ANNA)
    asked = s.rpc.notifications.schedule({"member_id": member["id"], "journey": "results_ready",
                                          "due_at": "2027-03-10T14:30:00Z", "context": {"branch": "SH01"}})
    assert asked["state"] == "queued" and asked["due_at"] == "2027-03-10T14:30:00Z"  # 22:30 in Shanghai

    def results_sms():
        return [r for r in s.providers.requests("sms") if "results" in r["body"].get("Body", "")]

    s.dispatch("2027-03-10T14:30:00Z")  # 22:30: due, but inside quiet hours
    (delivery,) = s.deliveries(member["id"], "results_ready")
    assert delivery["state"] == "queued" and delivery["due_at"] == "2027-03-11T00:00:00Z"  # 08:00 local
    assert results_sms() == []
    for night in ("2027-03-10T18:00:00Z", "2027-03-10T23:59:59Z"):  # 02:00, 07:59:59
        s.dispatch(night)
        assert results_sms() == []
    s.dispatch("2027-03-11T00:00:00Z")  # 08:00
    (delivery,) = s.deliveries(member["id"], "results_ready")
    assert delivery["state"] == "sent" and delivery["channel"] == "sms"
    assert delivery["sent_at"] == "2027-03-11T00:00:00Z"
    assert len(results_sms()) == 1 and results_sms()[0]["body"]["To"] == "+8613800138000"
    detail = s.rpc.notifications.get_delivery(delivery["id"])
    assert [step["state"] for step in detail["steps"]] == ["queued", "queued", "sent"]
    assert "quiet_hours" in detail["steps"][1]["detail"]


def test_only_services_drive_the_scheduler(suite, rpc):
    suite()
    admin = rpc(caller=Identity(kind="staff", subject="u1", role="group_admin", branches=("*",)))
    with pytest.raises(Forbidden):
        admin.notifications.dispatch_due(now="2027-03-11T00:00:00Z")
    with pytest.raises(Forbidden):
        admin.notifications.run_daily()
