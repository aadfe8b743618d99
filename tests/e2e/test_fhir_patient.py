"""The FHIR facade's Patient over HTTP: the CapabilityStatement, create / read / search / update with
If-Match, conditional create (20 at once: one member, PostgreSQL, overlap shown), OperationOutcome errors."""

from __future__ import annotations

import eventlet
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient

from tests.integration.overlap import LockWaits

HIS = "https://his-jingan.example.org/mrn"
OTHER_HIS = "https://his-pudong.example.org/patients"
FHIR = {"Content-Type": "application/fhir+json"}


def a_patient(mrn: str = "MRN-7001", phone: str = "+8613811117001", family: str = "Lin", given: str = "Wei",
              birth: str = "1979-11-23") -> dict:
    return {"resourceType": "Patient", "identifier": [{"system": HIS, "value": mrn}],
            "name": [{"family": family, "given": [given]}], "gender": "female", "birthDate": birth,
            "telecom": [{"system": "phone", "value": phone, "use": "mobile"}],
            "managingOrganization": {"reference": "Organization/SH01"}}


def fhir(suite, method: str, path: str, body: dict | None = None, headers: dict | None = None, **kwargs):
    return suite.call(method, path, role=kwargs.pop("role", "integration"), json=body,
                      headers={**FHIR, **(headers or {})}, **kwargs)


def test_the_capability_statement_lists_what_the_routes_serve(suite):
    response = suite.call("GET", "/fhir/metadata", role=None)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/fhir+json")
    statement = CapabilityStatement.model_validate(response.json())
    patient = next(item for item in statement.rest[0].resource if item.type == "Patient")
    assert {item.code for item in patient.interaction} == {"read", "search-type", "create", "update"}
    assert {item.name for item in patient.searchParam} >= {"identifier", "telecom", "phone", "name", "family",
                                                           "given", "birthdate"}
    assert patient.conditionalCreate is True and patient.versioning == "versioned-update"
    assert "/fhir/metadata" not in str(suite.call("GET", "/openapi.json").json()["paths"])


def test_a_patient_created_reads_back_valid_and_whole_and_every_search_finds_it(suite):
    created = fhir(suite, "POST", "/fhir/Patient", a_patient())
    assert created.status_code == 201, created.text
    assert created.headers["Content-Type"].startswith("application/fhir+json")
    patient_id = created.json()["id"]
    assert created.headers["Location"].endswith(f"/fhir/Patient/{patient_id}/_history/1")
    read = fhir(suite, "GET", f"/fhir/Patient/{patient_id}")
    assert read.status_code == 200 and read.headers["ETag"] == 'W/"1"'
    patient = Patient.model_validate(read.json())
    assert {"system": HIS, "value": "MRN-7001"} in [{"system": i.system, "value": i.value} for i in patient.identifier]
    card = patient.identifier[0]
    assert card.system.startswith("urn:careloop:") and card.system.endswith(":card")
    assert [(t.system, t.value) for t in patient.telecom] == [("phone", "+8613811117001")]
    assert (patient.name[0].family, patient.name[0].given) == ("Lin", ["Wei"])
    assert patient.gender == "female" and patient.birthDate.isoformat() == "1979-11-23"
    assert patient.meta.versionId == "1" and patient.active is True

    for query in ({"identifier": f"{HIS}|MRN-7001"}, {"identifier": f"{card.system}|{card.value}"},
                  {"telecom": "phone|+8613811117001"}, {"phone": "13811117001"}, {"name": "Lin"},
                  {"family": "Lin", "birthdate": "1979-11-23"}, {"given": "Wei", "family": "Lin"}):
        found = fhir(suite, "GET", "/fhir/Patient", params=query)
        assert found.status_code == 200, (query, found.text)
        bundle = Bundle.model_validate(found.json())
        assert bundle.type == "searchset"
        assert [entry.resource.id for entry in bundle.entry or ()] == [patient_id], query
    for query in ({"identifier": f"{HIS}|MRN-nobody"}, {"family": "Lin", "birthdate": "1979-11-24"}):
        assert fhir(suite, "GET", "/fhir/Patient", params=query).json().get("entry") is None, query

    # the same name and birth date with another phone and MRN: probably her — a review, no second member
    namesake = fhir(suite, "POST", "/fhir/Patient", a_patient(mrn="MRN-7002", phone="+8613811117009"))
    assert namesake.status_code == 202, namesake.text
    issue = OperationOutcome.model_validate(namesake.json()).issue[0]
    assert issue.severity == "information" and issue.details.coding[0].system == "urn:careloop:identity-review"
    found = fhir(suite, "GET", "/fhir/Patient", params={"family": "Lin", "given": "Wei"}).json()
    assert [entry["resource"]["id"] for entry in found["entry"]] == [patient_id]


def test_search_pages_with_a_next_link_until_the_last_page(suite):
    ids = set()
    for n in range(3):
        body = a_patient(mrn=f"MRN-PG{n}", phone=f"+86138111180{n:02d}", given=f"Page{n}", family="Qiao",
                         birth=f"1990-01-0{n + 1}")
        response = fhir(suite, "POST", "/fhir/Patient", body)
        assert response.status_code == 201, response.text
        ids.add(response.json()["id"])
    seen, url, pages = [], "/fhir/Patient?family=Qiao&_count=2", 0
    while url:
        bundle = fhir(suite, "GET", url).json()
        seen += [entry["resource"]["id"] for entry in bundle.get("entry", ())]
        following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        url = following[0].removeprefix(suite.base_url) if following else None
        pages += 1
        assert pages < 5
    assert set(seen) == ids and len(seen) == 3 and pages >= 2


def test_update_needs_the_current_version_and_a_stale_one_is_412(suite):
    created = fhir(suite, "POST", "/fhir/Patient", a_patient(mrn="MRN-U1", phone="+8613811117101")).json()
    path = f"/fhir/Patient/{created['id']}"
    changed = {**created, "telecom": [{"system": "phone", "value": "+8613811117102", "use": "mobile"}],
               "identifier": [*created["identifier"], {"system": OTHER_HIS, "value": "PD-55"}]}
    updated = fhir(suite, "PUT", path, changed, headers={"If-Match": 'W/"1"'})
    assert updated.status_code == 200, updated.text
    assert updated.json()["meta"]["versionId"] == "2" and updated.headers["ETag"] == 'W/"2"'
    assert updated.json()["telecom"][0]["value"] == "+8613811117102"
    # a second HIS finds the same member by its own patient id
    other = fhir(suite, "GET", "/fhir/Patient", params={"identifier": f"{OTHER_HIS}|PD-55"}).json()
    assert [entry["resource"]["id"] for entry in other["entry"]] == [created["id"]]
    stale = fhir(suite, "PUT", path, {**changed, "gender": "other"}, headers={"If-Match": 'W/"1"'})
    assert stale.status_code == 412, stale.text
    issue = OperationOutcome.model_validate(stale.json()).issue[0]
    assert issue.code == "conflict" and "version 2" in issue.diagnostics
    assert fhir(suite, "GET", path).json()["gender"] == "female"


def test_refusals_are_operation_outcomes_with_the_right_status(suite):
    def issue(response, status: int, code: str) -> None:
        assert response.status_code == status, response.text
        assert response.headers["Content-Type"].startswith("application/fhir+json")
        assert OperationOutcome.model_validate(response.json()).issue[0].code == code, response.text

    issue(suite.call("GET", "/fhir/Patient/4d2c9a10-0000-4000-8000-00000000beef", role=None), 401, "login")
    issue(fhir(suite, "GET", "/fhir/Patient/4d2c9a10-0000-4000-8000-00000000beef"), 404, "not-found")
    issue(fhir(suite, "GET", "/fhir/Patient/not-an-id"), 404, "not-found")
    issue(fhir(suite, "POST", "/fhir/Patient", a_patient(), role="clinician"), 403, "forbidden")
    issue(fhir(suite, "POST", "/fhir/Patient", {"resourceType": "Patient", "birthDate": "not a date"}), 400,
          "structure")
    issue(fhir(suite, "POST", "/fhir/Patient", {**a_patient(), "birthDate": None}), 422, "processing")
    issue(fhir(suite, "GET", "/fhir/Patient", params={"shoe_size": "42"}), 400, "structure")
    issue(fhir(suite, "POST", "/fhir/Patient", a_patient(mrn="MRN-C0"),
               headers={"If-None-Exist": f"identifier={HIS}|MRN-other"}), 422, "processing")
    issue(fhir(suite, "PUT", "/fhir/Patient/4d2c9a10-0000-4000-8000-00000000beef",
               {**a_patient(), "id": "4d2c9a10-0000-4000-8000-00000000beef"}, headers={"If-Match": "W/\"1\""}),
          404, "not-found")


@pytest.mark.timeout(180)
def test_twenty_conditional_creates_of_one_patient_at_once_make_one_member(suite):
    if not suite.database_urls["members"].startswith("postgresql"):
        pytest.skip("the race is shown on PostgreSQL (pg_locks)")
    body = a_patient(mrn="MRN-RACE", phone="+8613811117201", family="Race", given="Once")
    condition = {"If-None-Exist": f"identifier={HIS}|MRN-RACE"}
    pool = eventlet.GreenPool(20)

    def create(_n: int):  # as a FHIR client would: a 503 beyond the gateway's bound in flight is sent again
        for _ in range(60):
            response = fhir(suite, "POST", "/fhir/Patient", body, headers=condition)
            if response.status_code != 503:
                return response
            eventlet.sleep(float(response.headers.get("Retry-After", "1")))
        return response

    with LockWaits(suite.database_urls["members"]) as waits:
        responses = list(pool.imap(create, range(20)))
    statuses = sorted(response.status_code for response in responses)
    assert set(statuses) <= {200, 201} and statuses.count(201) == 1, [r.text for r in responses if r.status_code > 201]
    assert len({response.json()["id"] for response in responses}) == 1
    found = fhir(suite, "GET", "/fhir/Patient", params={"identifier": f"{HIS}|MRN-RACE"}).json()
    assert len(found["entry"]) == 1
    assert waits.count() > 0, "no conditional create waited for another: they did not overlap"
