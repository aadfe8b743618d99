"""The flows ARCHITECTURE.md names, across all five services, over HTTP as the desk and the HIS use them.

A paid visit: records completes it once → ``visit_completed`` → points earns (and pays the referrer
their second bonus), members adds the spend and upgrades the tier → ``tier_changed`` → notifications
congratulates. A refund: points takes back exactly what the visit earned, members takes the spend out
but does not demote mid-year, and every ledger still reconciles. (A full refund voids the bill: the
visit's points and the referrer's first-paid-visit bonus go too.)
"""

from __future__ import annotations

import uuid

from tests.harness import wait_for

SH01 = ("SH01",)


def enrol(suite, name: str, phone: str, **extra):
    response = suite.call("POST", "/v1/members", role="front_desk", branches=SH01, json={
        "full_name": name, "phone": phone, "birth_date": "1988-04-09", "home_branch": "SH01",
        "consents": {"sms": True}, **extra}, headers={"Idempotency-Key": f"enrol-{phone}"})
    assert response.status_code == 201, response.text
    return response.json()


def points_of(suite, member_id: str) -> int:
    return suite.call("GET", f"/v1/members/{member_id}/points", role="front_desk", branches=SH01).json()["balance"]


def journeys_of(suite, member_id: str) -> set[str]:
    items = suite.call("GET", f"/v1/members/{member_id}/deliveries", role="customer_service", branches=SH01).json()
    return {delivery["journey"] for delivery in items["items"]}


def test_a_paid_visit_earns_upgrades_congratulates_and_its_refund_takes_back_exactly(suite):
    referrer = enrol(suite, "Gao Yuan", "13811112222")
    patient = enrol(suite, "Lin Hui", "13833334444", referral_code=referrer["referral_code"])
    wait_for(lambda: points_of(suite, referrer["id"]) == 200, message="the referral bonus on enrolment")

    visit = suite.call("POST", "/v1/visits", role="front_desk", branches=SH01,
                       json={"member_id": patient["id"], "branch": "SH01"})
    assert visit.status_code == 201, visit.text
    bill = {"bill_id": f"HIS-{uuid.uuid4().hex[:8]}", "member_id": patient["id"], "branch": "SH01",
            "currency": "CNY", "items": [{"category": "implant", "code": "IMP-01", "amount_minor": 600_000}],
            "payments": [{"method": "card", "amount_minor": 600_000}]}
    completed = suite.call("POST", f"/v1/visits/{visit.json()['id']}/complete", role="front_desk",
                           branches=SH01, json=bill)
    assert completed.status_code == 200, completed.text
    again = suite.call("POST", f"/v1/visits/{visit.json()['id']}/complete", role="front_desk", branches=SH01,
                       json=bill)
    assert again.status_code == 200 and again.json()["id"] == completed.json()["id"]  # once per bill

    # points: 1 a yuan paid + 10 for the visit (the multiplier is the tier *before* this visit)
    wait_for(lambda: points_of(suite, patient["id"]) == 6_010, message="points for the visit")
    wait_for(lambda: points_of(suite, referrer["id"]) == 500, message="the referrer's first-paid-visit bonus")
    # members: 6,000 CNY crosses silver's 5,000 CNY spend threshold on this very event
    tier = wait_for(lambda: (lambda t: t if t["tier"] == "silver" else None)(
        suite.call("GET", f"/v1/members/{patient['id']}/tier").json()), message="silver")
    history = suite.call("GET", f"/v1/members/{patient['id']}/tier-history").json()["items"]
    assert [(h["to_tier"], h["reason"]) for h in history][:1] == [("silver", "spend")]
    assert tier["activity"]["spend_minor"] == 600_000
    # notifications: welcome, the upgrade's congratulations, the advice after the visit
    wait_for(lambda: {"welcome", "tier_upgrade", "post_visit_advice"} <= journeys_of(suite, patient["id"]),
             message="the patient's messages")

    refund = suite.call("POST", f"/v1/visits/{visit.json()['id']}/refunds", role="branch_manager",
                        branches=SH01, json={"refund_id": "R-1", "payments": [{"method": "card",
                                                                               "amount_minor": 600_000}]})
    assert refund.status_code in (200, 201), refund.text
    # a full refund voids the bill: everything it earned goes, the referrer's second bonus included
    wait_for(lambda: points_of(suite, patient["id"]) == 0, message="the visit's points taken back")
    wait_for(lambda: points_of(suite, referrer["id"]) == 200, message="the first-paid-visit bonus taken back")
    wait_for(lambda: suite.call("GET", f"/v1/members/{patient['id']}/tier").json()["activity"]["spend_minor"] == 0,
             message="the spend taken out")
    assert suite.call("GET", f"/v1/members/{patient['id']}/tier").json()["tier"] == "silver"  # no mid-year demotion
    for member in (patient, referrer):
        check = suite.call("GET", "/v1/points/reconciliation", params={"member_id": member["id"]}).json()
        assert check["ok"], check
