"""The FHIR facade's mappings without a broker: Patient ⇄ member, Encounter money ⇄ minor units, If-Match,
the CapabilityStatement generated from the routes, OperationOutcome."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient

from gateway.fhir import capability, encounter, patient
from gateway.fhir.http import outcome
from gateway.fhir.routes import _date_test, _version
from gateway.service import GatewayService
from services.kit.errors import BadRequest, Invalid

HIS = "https://his.example.org/mrn"
PATIENT = {"resourceType": "Patient", "identifier": [{"system": HIS, "value": "M-1"}],
           "name": [{"family": "Zhou", "given": ["Min", "Hua"]}], "gender": "unknown", "birthDate": "1985-03-04",
           "telecom": [{"system": "email", "value": "z@example.org"},
                       {"system": "phone", "value": "+862155550000", "use": "home"},
                       {"system": "phone", "value": "+8613811112222", "use": "mobile"}],
           "managingOrganization": {"reference": "Organization/SH01"}}


def test_a_patient_becomes_members_patient_fields_mobile_first():
    fields = patient.member_fields(PATIENT, ("*",))
    assert fields["full_name"] == "Zhou Min Hua" and fields["gender"] == "undisclosed"
    assert fields["phones"] == ["+8613811112222", "+862155550000"] and fields["phone"] == "+8613811112222"
    assert fields["identifiers"] == [{"system": HIS, "value": "M-1"}] and fields["home_branch"] == "SH01"
    assert fields["email"] == "z@example.org" and fields["birth_date"] == "1985-03-04"


@pytest.mark.parametrize(("change", "error", "field"), [
    ({"birthDate": None}, Invalid, "birthDate"),
    ({"name": []}, Invalid, "name"),
    ({"managingOrganization": None}, Invalid, "managingOrganization"),
    ({"birthDate": "04/03/1985"}, BadRequest, "birthDate"),
    ({"resourceType": "Person"}, BadRequest, None),
])
def test_a_patient_that_is_not_a_member_is_refused(change, error, field):
    body = {key: value for key, value in {**PATIENT, **change}.items() if value is not None}
    with pytest.raises(error) as raised:
        patient.member_fields(body, ("*",))
    assert field is None or any(field in key for key in raised.value.fields)


def test_a_caller_with_one_branch_may_leave_the_branch_out():
    body = {key: value for key, value in PATIENT.items() if key != "managingOrganization"}
    assert patient.member_fields(body, ("SH02",))["home_branch"] == "SH02"


def test_a_member_reads_as_a_valid_patient_with_its_version():
    member = {"id": "4d2c9a10-0000-4000-8000-00000000beef", "full_name": "Zhou Min", "phone": "+8613811112222",
              "email": None, "gender": "female", "birth_date": "1985-03-04", "home_branch": "SH01", "status": "active",
              "version": 3, "updated_at": "2026-12-06T10:00:00Z", "merged_into": None}
    resource = patient.resource(member, [{"system": "urn:careloop:demo:card", "value": "123"}])
    parsed = Patient.model_validate(resource)
    assert parsed.meta.versionId == "3" and (parsed.name[0].family, parsed.name[0].given) == ("Zhou", ["Min"])
    assert patient.member_fields({**resource}, ("*",))["full_name"] == "Zhou Min"


@pytest.mark.parametrize(("value", "currency", "minor"), [("300.5", "CNY", 30050), ("0.1", "CNY", 10),
                                                          ("1500", "JPY", 1500), ("12.34", "TWD", 1234)])
def test_money_becomes_whole_minor_units(value, currency, minor):
    assert encounter.minor_units(SimpleNamespace(value=value, currency=currency), "x") == (minor, currency)


@pytest.mark.parametrize(("value", "currency"), [("300.555", "CNY"), ("10.5", "JPY")])
def test_money_with_more_decimals_than_its_currency_is_refused_not_rounded(value, currency):
    with pytest.raises(Invalid):
        encounter.minor_units(SimpleNamespace(value=value, currency=currency), "x")


@pytest.mark.parametrize(("header", "version"), [('W/"3"', 3), ('"12"', 12), ("7", 7), (None, None)])
def test_if_match_gives_the_version(header, version):
    request = SimpleNamespace(headers={} if header is None else {"If-Match": header})
    assert _version(request) == version


def test_a_malformed_if_match_is_400():
    with pytest.raises(BadRequest):
        _version(SimpleNamespace(headers={"If-Match": "W/abc"}))


def test_date_searches_compare_days():
    assert _date_test("ge2026-12-01")("2026-12-01") and not _date_test("lt2026-12-01")("2026-12-01")
    assert _date_test("2026-12-01")("2026-12-01") and not _date_test("eq2026-12-01")("")
    with pytest.raises(Invalid):
        _date_test("2026/12/01")


def test_the_capability_statement_is_generated_from_the_routes_and_valid():
    statement = capability.statement(GatewayService, "2026-12-06T00:00:00+00:00")
    parsed = CapabilityStatement.model_validate(statement)
    served = {item.type: {i.code for i in item.interaction or ()} for item in parsed.rest[0].resource}
    assert served == {"Patient": {"read", "search-type", "create", "update"},
                      "Encounter": {"read", "search-type", "create"},
                      "AllergyIntolerance": {"read", "search-type"}, "Condition": {"read", "search-type"},
                      "CarePlan": {"search-type"}, "Appointment": {"read", "search-type", "create", "update"}}
    patient_entry = next(item for item in parsed.rest[0].resource if item.type == "Patient")
    assert [operation.name for operation in patient_entry.operation] == ["everything"]


def test_an_operation_outcome_names_the_fields_and_the_permission():
    body = outcome(403, "No.", permission="records:read", fields={"reason": ["Required."]})
    parsed = OperationOutcome.model_validate(body)
    assert parsed.issue[0].code == "forbidden" and parsed.issue[0].details.coding[0].code == "records:read"
    assert parsed.issue[1].expression == ["reason"]
