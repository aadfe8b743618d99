"""The FHIR facade's Encounter over HTTP: a finished Encounter with its contained Invoice completes the visit
once per HIS identifier and earns points exactly like a bill; read and search by patient, date, status."""

from __future__ import annotations

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.encounter import Encounter

from tests.harness import wait_for

FHIR = {"Content-Type": "application/fhir+json"}
ENCOUNTERS = "https://his-jingan.example.org/encounters"


def fhir(suite, method: str, path: str, body: dict | None = None, **kwargs):
    return suite.call(method, path, role="integration", json=body, headers=FHIR, **kwargs)


def an_encounter(member_id: str, his_id: str, amount: float = 300.5) -> dict:
    money = {"value": amount, "currency": "CNY"}
    return {
        "resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"},
        "identifier": [{"system": ENCOUNTERS, "value": his_id}],
        "subject": {"reference": f"Patient/{member_id}"}, "serviceProvider": {"reference": "Organization/SH01"},
        "participant": [{"individual": {"reference": "Practitioner/dr-wang"}}],
        "contained": [{"resourceType": "Invoice", "id": "bill", "status": "balanced", "lineItem": [{
            "chargeItemCodeableConcept": {"coding": [{"system": "urn:careloop:item-category", "code": "cleaning"},
                                                     {"system": "https://his.example.org/codes", "code": "CL-1"}]},
            "priceComponent": [{"type": "base", "amount": money}]}],
            "extension": [{"url": "urn:careloop:fhir:payment", "extension": [
                {"url": "method", "valueCode": "card"}, {"url": "amount", "valueMoney": money}]}]}],
    }


def points_of(suite, member_id: str) -> int:
    return suite.call("GET", f"/v1/members/{member_id}/points").json()["balance"]


def test_an_encounter_completes_the_visit_once_earns_like_a_bill_and_is_found(suite):
    member = suite.call("POST", "/v1/members", json={
        "full_name": "He Jun", "phone": "13811119001", "birth_date": "1980-02-02", "home_branch": "SH01"},
        headers={"Idempotency-Key": "fhir-enc-member"}).json()
    body = an_encounter(member["id"], "ENC-1")
    created = fhir(suite, "POST", "/fhir/Encounter", body)
    assert created.status_code == 201, created.text
    encounter = Encounter.model_validate(created.json())
    assert encounter.status == "finished" and encounter.subject.reference == f"Patient/{member['id']}"
    invoice = created.json()["contained"][0]
    assert invoice["lineItem"][0]["priceComponent"][0]["amount"] == {"value": 300.5, "currency": "CNY"}
    again = fhir(suite, "POST", "/fhir/Encounter", body)  # the HIS sends it again
    assert again.status_code == 201 and again.json()["id"] == encounter.id
    # 1 a yuan paid (300) + 10 for the visit, once
    wait_for(lambda: points_of(suite, member["id"]) == 310, message="the visit's points")
    assert suite.call("GET", f"/v1/members/{member['id']}/visits").json()["items"].__len__() == 1

    read = fhir(suite, "GET", f"/fhir/Encounter/{encounter.id}")
    assert read.status_code == 200 and read.json()["identifier"][0]["value"] == "ENC-1"
    day = read.json()["period"]["start"][:10]
    for query, found in (({"patient": f"Patient/{member['id']}"}, True), ({"patient": member["id"], "status": "finished"}, True),
                         ({"patient": member["id"], "date": f"ge{day}"}, True),
                         ({"patient": member["id"], "date": f"lt{day}"}, False),
                         ({"patient": member["id"], "status": "planned"}, False)):
        response = fhir(suite, "GET", "/fhir/Encounter", params=query)
        assert response.status_code == 200, response.text
        bundle = Bundle.model_validate(response.json())
        assert [entry.resource.id for entry in bundle.entry or ()] == ([encounter.id] if found else []), query
    assert points_of(suite, member["id"]) == 310


def test_an_encounter_that_is_not_a_finished_bill_is_refused_and_changes_nothing(suite):
    member = suite.call("POST", "/v1/members", json={
        "full_name": "Xu Lan", "phone": "13811119002", "birth_date": "1981-03-03", "home_branch": "SH01"},
        headers={"Idempotency-Key": "fhir-enc-member-2"}).json()
    planned = {**an_encounter(member["id"], "ENC-2"), "status": "planned"}
    assert fhir(suite, "POST", "/fhir/Encounter", planned).status_code == 422
    fraction = an_encounter(member["id"], "ENC-3", amount=300.555)
    refused = fhir(suite, "POST", "/fhir/Encounter", fraction)
    assert refused.status_code == 422 and refused.json()["resourceType"] == "OperationOutcome", refused.text
    assert fhir(suite, "GET", "/fhir/Encounter", params={"date": "2026-01-01"}).status_code == 422
    assert suite.call("GET", f"/v1/members/{member['id']}/visits").json()["items"] == []
