"""The FHIR facade's clinical resources and appointments over HTTP: AllergyIntolerance, Condition and CarePlan
by patient need the clinical role and a reason and leave audit rows like the REST routes; Appointment read,
search, book (a taken slot is 409) and cancel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.bundle import Bundle

SH01 = ("SH01",)
FHIR = {"Content-Type": "application/fhir+json"}
REASON = {"X-Access-Reason": "allergy check before surgery"}


def enrol(suite, phone: str) -> str:
    response = suite.call("POST", "/v1/members", json={"full_name": f"Fhir Clinical{phone[-3:]}", "phone": phone,
                                                       "birth_date": "1975-05-05", "home_branch": "SH01"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_allergies_conditions_and_care_plans_are_clinical_reads_with_a_reason_and_audited(suite):
    member_id = enrol(suite, "13900139101")
    saved = suite.call("PATCH", f"/v1/members/{member_id}/record", role="clinician", branches=SH01,
                       headers={**REASON, "Idempotency-Key": "fhir-p-1"},
                       json={"allergies": [{"substance": "Penicillin", "reaction": "rash", "severity": "severe"}],
                             "medical_history": [{"condition": "Hypertension", "since": "2015"}]})
    assert saved.status_code == 200, saved.text
    query = {"patient": f"Patient/{member_id}"}
    allergies = suite.call("GET", "/fhir/AllergyIntolerance", role="clinician", branches=SH01, params=query,
                           headers={**FHIR, **REASON})
    assert allergies.status_code == 200, allergies.text
    entries = Bundle.model_validate(allergies.json()).entry
    assert [e.resource.code.text for e in entries] == ["Penicillin"]
    assert entries[0].resource.reaction[0].severity == "severe"
    conditions = suite.call("GET", "/fhir/Condition", role="integration", params=query, headers={**FHIR, **REASON})
    assert [e["resource"]["code"]["text"] for e in conditions.json()["entry"]] == ["Hypertension"]
    one = suite.call("GET", f"/fhir/AllergyIntolerance/{member_id}-1", role="clinician", branches=SH01, headers=REASON)
    assert one.status_code == 200 and one.json()["code"]["text"] == "Penicillin", one.text
    assert suite.call("GET", f"/fhir/Condition/{member_id}-2", role="clinician", branches=SH01,
                      headers=REASON).status_code == 404
    plans = suite.call("GET", "/fhir/CarePlan", role="clinician", branches=SH01, params=query,
                       headers={**FHIR, **REASON})
    assert plans.status_code == 200, plans.text
    Bundle.model_validate(plans.json())

    no_reason = suite.call("GET", "/fhir/AllergyIntolerance", role="clinician", branches=SH01, params=query)
    assert no_reason.status_code == 422 and no_reason.json()["resourceType"] == "OperationOutcome"
    desk = suite.call("GET", "/fhir/Condition", role="front_desk", branches=SH01, params=query, headers=REASON)
    assert desk.status_code == 403 and desk.json()["issue"][0]["code"] == "forbidden"
    trail = suite.call("GET", "/v1/audit", role="auditor", params={"member_id": member_id}).json()["items"]
    reads = [(entry["action"], entry["reason"]) for entry in trail if entry["action"] == "read"]
    assert reads.count(("read", REASON["X-Access-Reason"])) == 5, trail


def test_an_appointment_is_booked_found_double_booking_refused_and_cancelled(suite):
    anna, bo = enrol(suite, "13900139102"), enrol(suite, "13900139103")
    tomorrow = (datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date() + timedelta(days=1)).isoformat()
    published = suite.call("POST", "/v1/appointments/slots", role="front_desk", branches=SH01,
                           json={"branch": "SH01", "doctor_id": "dr-wang", "on": tomorrow, "start": "15:00",
                                 "end": "15:30", "slot_minutes": 30})
    assert published.status_code == 200, published.text
    slot = published.json()["items"][0]["id"]

    def proposal(member_id: str) -> dict:
        return {"resourceType": "Appointment", "status": "proposed", "slot": [{"reference": f"Slot/{slot}"}],
                "participant": [{"actor": {"reference": f"Patient/{member_id}"}, "status": "needs-action"}]}

    booked = suite.call("POST", "/fhir/Appointment", role="integration", json=proposal(anna),
                        headers={**FHIR, "Idempotency-Key": "fhir-book-1"})
    assert booked.status_code == 201, booked.text
    appointment = Appointment.model_validate(booked.json())
    assert appointment.status == "booked" and booked.headers["Location"].endswith(appointment.id)
    taken = suite.call("POST", "/fhir/Appointment", role="integration", json=proposal(bo), headers=FHIR)
    assert taken.status_code == 409 and taken.json()["issue"][0]["code"] == "conflict", taken.text
    read = suite.call("GET", f"/fhir/Appointment/{appointment.id}", role="front_desk", branches=SH01)
    assert read.status_code == 200 and read.json()["participant"][0]["actor"]["reference"] == f"Patient/{anna}"
    found = suite.call("GET", "/fhir/Appointment", role="front_desk", branches=SH01, params={"patient": anna})
    assert [e["resource"]["id"] for e in found.json()["entry"]] == [appointment.id]

    cancel = {**booked.json(), "status": "cancelled", "cancelationReason": {"text": "patient travelling"}}
    cancelled = suite.call("PUT", f"/fhir/Appointment/{appointment.id}", role="integration", json=cancel,
                           headers=FHIR)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled", cancelled.text
    moved = suite.call("PUT", f"/fhir/Appointment/{appointment.id}", role="integration",
                       json={**booked.json(), "status": "arrived"}, headers=FHIR)
    assert moved.status_code == 422
    again = suite.call("POST", "/fhir/Appointment", role="integration", json=proposal(bo), headers=FHIR)
    assert again.status_code == 201, again.text  # the slot is free again


def test_everything_gives_the_patient_and_record_then_visits_a_page_at_a_time(suite):
    member_id = enrol(suite, "13900139104")
    suite.call("PATCH", f"/v1/members/{member_id}/record", role="clinician", branches=SH01,
               headers={**REASON, "Idempotency-Key": "fhir-p-2"},
               json={"allergies": [{"substance": "Latex", "severity": "mild"}]})
    for n in range(3):
        bill = {"bill_id": f"EV-{n}", "member_id": member_id, "branch": "SH01", "currency": "CNY",
                "items": [{"category": "exam", "code": "EX", "amount_minor": 1000}],
                "payments": [{"method": "cash", "amount_minor": 1000}]}
        assert suite.call("POST", "/v1/his/bills", role="integration", json=bill).status_code == 200
    url, kinds, pages = f"/fhir/Patient/{member_id}/$everything?_count=2", [], 0
    while url:
        response = suite.call("GET", url, role="clinician", branches=SH01, headers=REASON)
        assert response.status_code == 200, response.text
        bundle = Bundle.model_validate(response.json())
        kinds.append([entry.resource.get_resource_type() for entry in bundle.entry or ()])
        following = [link.url for link in bundle.link if link.relation == "next"]
        url = following[0].removeprefix(suite.base_url) if following else None
        pages += 1
        assert pages < 5
    assert kinds[0][:2] == ["Patient", "AllergyIntolerance"] and kinds[0][-2:] == ["Encounter", "Encounter"]
    assert sum(page.count("Encounter") for page in kinds) == 3 and kinds[1:] == [["Encounter"]]
    refused = suite.call("GET", f"/fhir/Patient/{member_id}/$everything", role="front_desk", branches=SH01,
                         headers=REASON)
    assert refused.status_code == 403
