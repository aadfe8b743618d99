"""Export for the warehouse (issue 19): members as CSV, incremental from the cursor, gzip; and back in."""

from __future__ import annotations

import csv
import gzip
import io

import pytest

from tests.e2e.test_imports_over_http import settled

NO_LAG = {"EXPORT_SAFETY_LAG_SECONDS": 0}  # the lag's own test is tests/integration/test_exports.py

PEOPLE = [
    {"full_name": "王芳", "phone": "13900000001", "birth_date": "1980-01-02", "home_branch": "SH01",
     "id_document": {"type": "cn_resident_id", "number": "11010519491231002X"}},
    {"full_name": "Ana López", "phone": "13900000002", "birth_date": "1991-07-08", "home_branch": "HZ01",
     "email": "ana@example.com", "gender": "female"},
    {"full_name": "陳大文", "phone": "13900000003", "birth_date": "1975-12-31", "home_branch": "SH01"},
]


@pytest.fixture
def suite(start_suite):
    return start_suite(members_config=NO_LAG)


def rows_of(answer) -> list[dict]:
    body = gzip.decompress(answer.content) if answer.headers["Content-Type"] == "application/gzip" else answer.content
    return list(csv.DictReader(io.StringIO(body.decode("utf-8"))))


def test_members_export_is_incremental_and_reads_back_in_as_the_same_people(suite, tmp_path):
    for person in PEOPLE:
        assert suite.call("POST", "/v1/members", json=person).status_code == 201
    first = suite.call("GET", "/v1/exports/members")
    assert first.status_code == 200, first.text
    exported = rows_of(first)
    assert [row["full_name"] for row in exported] == ["王芳", "Ana López", "陳大文"]
    assert exported[0]["phone"] == "+8613900000001" and exported[0]["id_number"] == "11010519491231002X"
    cursor = first.headers["X-Export-Cursor"]
    assert cursor

    assert rows_of(suite.call("GET", "/v1/exports/members", params={"since": cursor})) == []
    member_id = exported[1]["id"]
    assert suite.call("PATCH", f"/v1/members/{member_id}", json={"preferred_language": "es"}).status_code == 200
    later = suite.call("GET", "/v1/exports/members", params={"since": cursor, "gzip": "true"})
    assert later.headers["Content-Type"] == "application/gzip"
    assert [(row["id"], row["preferred_language"]) for row in rows_of(later)] == [(member_id, "es")]

    assert suite.call("GET", "/v1/exports/members", role="front_desk").status_code == 403

    # the export read back by the import: every row is the same person as a member (phone, name and birth date)
    path = tmp_path / "members.csv"
    path.write_bytes(first.content)
    job = suite.call("POST", "/v1/imports", json={"kind": "members", "filename": "members.csv"}).json()
    suite.call("PUT", f"/v1/imports/{job['id']}/file", data=path.read_bytes(),
               headers={"Content-Type": "application/octet-stream"})
    suite.call("POST", f"/v1/imports/{job['id']}/check")
    job = settled(suite, job["id"], "validated")
    assert job["counts"] == {"valid": 0, "invalid": 0, "present": 3, "repeated": 0, "imported": 0}
    assert job["columns"]["found"]["id_number"] == "id_number"
