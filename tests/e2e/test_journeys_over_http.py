"""A journey a branch manager composes through the gateway (issue 20): "3 days after an implant visit at SH01,
send post-op advice in the member's language and put a call in the consultant queue; stop if the member
booked" — refused with the fields that stop it, versioned, activated, started by an HIS bill, run by the
scheduler once, dry-run, previewed in four languages, paused and retired; kept from another branch's manager."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from tests.e2e.test_records_over_http import SH01, enrol
from tests.harness import wait_for

LANGUAGES = ("en", "zh-Hans", "zh-Hant", "es")


def definition(languages=LANGUAGES) -> dict:
    return {"name": "Implant post-op", "branches": ["SH01"],
            "trigger": {"event": "visit_completed", "categories": ["implant"]},
            "steps": [{"wait": {"days": 3}},
                      {"message": {"texts": {language: {"subject": f"After your implant ({language})",
                                                        "text": "Dear {{ member.name }}, rest and call "
                                                                "{{ branch.name }} if it hurts."}
                                             for language in languages}}},
                      {"task": {"queue": "consultant", "note": "How is the implant?"}}],
            "exits": ["appointment_booked"]}


def implant_bill(member_id: str) -> dict:
    return {"bill_id": f"HIS-{uuid.uuid4().hex[:8]}", "member_id": member_id, "branch": "SH01",
            "doctor_id": "dr-wang", "currency": "CNY",
            "items": [{"category": "implant", "code": "IMP1", "amount_minor": 800000}],
            "payments": [{"method": "card", "amount_minor": 800000}]}


def test_a_branch_manager_composes_runs_and_retires_a_journey(suite, rpc):
    def manager(method, path, **kwargs):
        return suite.call(method, path, role="branch_manager", branches=SH01, **kwargs)

    draft = manager("POST", "/v1/journeys", json=definition(("en",)), headers={"Idempotency-Key": "j-1"})
    assert draft.status_code == 201, draft.text
    journey_id = draft.json()["id"]
    refused = manager("POST", f"/v1/journeys/{journey_id}/activate")
    assert refused.status_code == 422 and "steps.1.message.texts.es" in refused.json()["error"]["fields"]
    assert manager("POST", "/v1/journeys", json={**definition(), "trigger": {"event": "visit_started"}}
                   ).status_code == 422
    assert suite.call("GET", f"/v1/journeys/{journey_id}", role="branch_manager",
                      branches=("SH02",)).status_code == 403
    assert suite.call("POST", "/v1/journeys", role="branch_manager", branches=("SH02",),
                      json=definition()).status_code == 403
    assert suite.call("GET", "/v1/journeys", role="front_desk", branches=SH01).status_code == 403
    assert manager("GET", "/v1/journeys/not-a-journey").status_code == 404

    edited = manager("PUT", f"/v1/journeys/{journey_id}", json=definition(), headers={"Idempotency-Key": "j-2"})
    assert edited.status_code == 200 and edited.json()["version"] == 2
    active = manager("POST", f"/v1/journeys/{journey_id}/activate", headers={"Idempotency-Key": "j-3"})
    assert active.status_code == 200 and active.json()["state"] == "active"
    assert [item["id"] for item in manager("GET", "/v1/journeys?state=active").json()["items"]] == [journey_id]

    member_id = enrol(suite, 71)
    billed = suite.call("POST", "/v1/his/bills", role="integration", branches=SH01, json=implant_bill(member_id))
    assert billed.status_code == 200, billed.text
    wait_for(lambda: manager("GET", f"/v1/journeys/{journey_id}").json()["runs"]["running"] == 1, timeout=20,
             message="the bill started a run")
    dry = manager("GET", f"/v1/journeys/{journey_id}/dry-run").json()
    assert dry["entering"] == 1 and [step["members"] for step in dry["steps"]] == [1, 1, 1]
    shown = manager("POST", f"/v1/journeys/{journey_id}/preview", json={"member_id": member_id})
    assert shown.status_code == 200, shown.text
    (message,) = shown.json()["steps"]
    assert message["step"] == 1 and sorted(message["languages"]) == sorted(LANGUAGES)
    assert [message["languages"][language]["subject"] for language in LANGUAGES] == [
        f"After your implant ({language})" for language in LANGUAGES]
    assert manager("POST", f"/v1/journeys/{journey_id}/preview", json={"channel": "fax"}).status_code == 422
    assert suite.call("POST", f"/v1/journeys/{journey_id}/preview", role="branch_manager", branches=("SH02",),
                      json={}).status_code == 403

    scheduler = rpc()
    scheduler.notifications.dispatch_due(now=datetime.now(UTC).isoformat())  # the wait begins
    later = (datetime.now(UTC) + timedelta(days=4)).replace(hour=3, minute=0).isoformat()  # 11:00 in Shanghai
    for _ in range(2):
        scheduler.notifications.dispatch_due(now=later)
    messages = [d for d in suite.call("GET", f"/v1/members/{member_id}/deliveries").json()["items"]
                if d["journey"] == "composed"]
    assert [(m["state"], m["channel"]) for m in messages] == [("delivered", "inbox")]
    calls = suite.call("GET", "/v1/follow-ups?branch=SH01&queue=consultant", role="customer_service",
                       branches=SH01).json()["items"]
    assert [(c["member_id"], c["state"], c["notes"]) for c in calls if c["state"] == "journey"] == [
        (member_id, "journey", "How is the implant?")]

    paused = manager("POST", f"/v1/journeys/{journey_id}/pause")
    assert paused.status_code == 200 and paused.json()["state"] == "paused"
    retired = manager("POST", f"/v1/journeys/{journey_id}/retire")
    assert retired.status_code == 200 and retired.json()["state"] == "retired"
    assert manager("POST", f"/v1/journeys/{journey_id}/activate").status_code == 409
    shown = manager("GET", f"/v1/journeys/{journey_id}").json()
    assert [v["version"] for v in shown["versions"]] == [1, 2] and shown["runs"]["finished"] == 1
