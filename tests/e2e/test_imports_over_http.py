"""Imports through the gateway (issue 19): the file streamed up, the dry run, the CSV report, the commit."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from tests import import_samples
from tests.harness import scalar, wait_for


def settled(suite, job_id: str, state: str, role: str = "group_admin", branches=("*",)) -> dict:
    def reached():
        job = suite.call("GET", f"/v1/imports/{job_id}", role=role, branches=branches).json()
        assert job["state"] not in ("failed", "cancelled"), job
        return job if job["state"] == state else None
    return wait_for(reached, timeout=60, interval=0.2, message=f"import {state}")


def test_upload_check_report_and_commit_over_http(suite, tmp_path: Path):
    bad = [(3, "phone"), (7, "birth_date")]
    path = import_samples.write_xlsx(tmp_path / "members.xlsx", import_samples.members(40, bad))
    created = suite.call("POST", "/v1/imports", json={"kind": "members", "filename": "members.xlsx"})
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    with open(path, "rb") as body:  # streamed from the file, not read into memory first
        uploaded = suite.call("PUT", f"/v1/imports/{job_id}/file", data=body,
                              headers={"Content-Type": "application/octet-stream"})
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json()["size_bytes"] == path.stat().st_size

    assert suite.call("POST", f"/v1/imports/{job_id}/check").status_code == 202
    job = settled(suite, job_id, "validated")
    assert job["counts"]["valid"] == 38 and job["counts"]["invalid"] == 2

    report = suite.call("GET", f"/v1/imports/{job_id}/report")
    assert report.status_code == 200 and report.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(report.content.decode("utf-8-sig"))))
    assert [(row["row"], row["column"]) for row in rows] == [("5", "手机号"), ("9", "出生日期")]

    committed = suite.call("POST", f"/v1/imports/{job_id}/commit", headers={"Idempotency-Key": f"c-{job_id}"})
    assert committed.status_code == 202, committed.text
    assert settled(suite, job_id, "done")["counts"]["imported"] == 38
    assert scalar(suite.database_urls["members"], "SELECT count(*) FROM members") == 38
    listed = suite.call("GET", "/v1/imports").json()["items"]
    assert [job["id"] for job in listed] == [job_id]
    actions = scalar(suite.database_urls["interfaces"],
                     "SELECT string_agg(action, ',' ORDER BY id) FROM import_job_log")
    assert actions == "created,checked,report_read,committed"


def test_front_desk_may_not_import(suite):
    answer = suite.call("POST", "/v1/imports", role="front_desk", json={"kind": "members", "filename": "m.csv"})
    assert answer.status_code == 403
