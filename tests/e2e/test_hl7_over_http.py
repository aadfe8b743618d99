"""HL7 v2 over HTTP (``POST /v1/hl7``) through the gateway to interfaces and members: an integration's API
key sends an A04 and gets the ACK as the body (AA; the same message again, the same ACK and one member);
a message for a branch the key does not hold is AR; a JSON body is a 400; the route is in the OpenAPI
document with its media types."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.harness import scalar

HL7 = {"Content-Type": "application/hl7-v2"}


def a04(control_id: str, branch: str = "SH01", mrn: str = "MRN-H1") -> bytes:
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    return "\r".join((
        f"MSH|^~\\&|HISAPP|HIS01|CARELOOP|SMILE|{stamp}||ADT^A04^ADT_A01|{control_id}|P|2.4||||||UNICODE UTF-8",
        "EVN|A04|20261206100000",
        f"PID|1||{mrn}^^^HIS01^MR||李^娜||19920304|F|||||13800138123^PRN^CP",
        f"PV1|1|O|DENT^^^{branch}")).encode("utf-8") + b"\r"


@pytest.fixture
def suite(start_suite):
    return start_suite(interfaces_config={"HL7_FACILITIES": "HIS01=SH01,SH02,HZ01"})


def msa(response) -> list[str]:
    return next(s for s in response.content.decode("utf-8").split("\r") if s.startswith("MSA")).split("|")


def test_an_a04_over_http_registers_once_and_answers_its_ack(suite):
    first = suite.call("POST", "/v1/hl7", role="integration", branches=("SH01",), headers=HL7, data=a04("H-1"))
    assert first.status_code == 200, first.text
    assert first.headers["Content-Type"].startswith("application/hl7-v2")
    assert msa(first)[:3] == ["MSA", "AA", "H-1"]
    again = suite.call("POST", "/v1/hl7", role="integration", branches=("SH01",), headers=HL7, data=a04("H-1"))
    assert again.status_code == 200 and again.content == first.content
    assert scalar(suite.database_urls["members"], "SELECT count(*) FROM members") == 1
    via = scalar(suite.database_urls["interfaces"], "SELECT received_via FROM hl7_messages")
    assert via.startswith("http:system:")


def test_a_branch_the_key_does_not_hold_is_ar_and_json_is_400(suite):
    other = suite.call("POST", "/v1/hl7", role="integration", branches=("HZ01",), headers=HL7,
                       data=a04("H-2", branch="SH01", mrn="MRN-H2"))
    assert other.status_code == 200 and msa(other)[:3] == ["MSA", "AR", "H-2"]
    assert scalar(suite.database_urls["members"], "SELECT count(*) FROM members") == 0
    as_json = suite.call("POST", "/v1/hl7", role="integration", json={"message": "MSH|..."})
    assert as_json.status_code == 400
    forbidden = suite.call("POST", "/v1/hl7", role="front_desk", headers=HL7, data=a04("H-3"))
    assert forbidden.status_code == 403


def test_the_route_is_in_the_openapi_document(suite):
    operation = suite.http.get(suite.base_url + "/openapi.json", timeout=30).json()["paths"]["/v1/hl7"]["post"]
    assert set(operation["requestBody"]["content"]) == {"application/hl7-v2", "x-application/hl7-v2+er7",
                                                        "text/plain"}
    assert "application/hl7-v2" in operation["responses"]["200"]["content"]
    assert operation["x-roles"] == ["integration"]
