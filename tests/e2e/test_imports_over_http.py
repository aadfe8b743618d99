"""Imports through the gateway (issue 19): the file streamed up, the dry run, the CSV report, the commit."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
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


def _imported(suite, path: Path, kind: str, role: str = "group_admin", branches=("*",)) -> dict:
    """A file of ``kind`` uploaded, checked and committed over HTTP by ``role``; the job when done."""
    created = suite.call("POST", "/v1/imports", role=role, branches=branches, json={"kind": kind, "filename": path.name})
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    with open(path, "rb") as body:
        assert suite.call("PUT", f"/v1/imports/{job_id}/file", role=role, branches=branches, data=body,
                          headers={"Content-Type": "application/octet-stream"}).status_code == 200
    assert suite.call("POST", f"/v1/imports/{job_id}/check", role=role, branches=branches).status_code == 202
    settled(suite, job_id, "validated", role, branches)
    committed = suite.call("POST", f"/v1/imports/{job_id}/commit", role=role, branches=branches,
                           headers={"Idempotency-Key": f"c-{job_id}"})
    assert committed.status_code == 202, committed.text
    return settled(suite, job_id, "done", role, branches)


def test_opening_balances_over_http_by_a_branch_manager_land_on_the_members_and_are_audited(suite, tmp_path: Path):
    _imported(suite, import_samples.write_csv(tmp_path / "members.csv", import_samples.members(5)), "members")
    manager = {"role": "branch_manager", "branches": ("SH01",)}
    points = import_samples.write_csv(tmp_path / "points.csv", import_samples.points_openings(5),
                                      headers=import_samples.POINTS_HEADERS)
    wallet = import_samples.write_csv(tmp_path / "wallet.csv", import_samples.wallet_openings(5),
                                      headers=import_samples.WALLET_HEADERS)
    assert _imported(suite, points, "points_openings", **manager)["counts"]["imported"] == 5
    assert _imported(suite, wallet, "wallet_openings", **manager)["counts"]["imported"] == 5

    member = suite.call("GET", "/v1/members", params={"phone": import_samples.person(2)[1]}).json()["items"][0]
    lots = suite.call("GET", f"/v1/members/{member['id']}/points/lots").json()["items"]
    assert [(lot["points"], lot["expires_on"]) for lot in lots] == [(102, "2099-12-31")]
    held = suite.call("GET", f"/v1/members/{member['id']}/wallet").json()
    assert (held["principal"]["amount"], held["bonus"]["amount"]) == (100250, 9000)
    actions = scalar(suite.database_urls["interfaces"],
                     "SELECT count(*) FROM import_job_log WHERE action = 'committed' AND actor LIKE '%branch_manager%'")
    assert actions == 2


def test_front_desk_may_not_import_opening_balances(suite):
    for kind in ("points_openings", "wallet_openings"):
        answer = suite.call("POST", "/v1/imports", role="front_desk", json={"kind": kind, "filename": "b.csv"})
        assert answer.status_code == 403


def test_visits_over_http_by_a_branch_manager_are_in_the_history_and_place_the_tier(suite, tmp_path: Path):
    _imported(suite, import_samples.write_csv(tmp_path / "members.csv", import_samples.members(3)), "members")
    manager = {"role": "branch_manager", "branches": ("SH01",)}
    phone, day = import_samples.person(1)[1], date.today() - timedelta(days=5)
    bills = [line for n in range(6) for line in import_samples.visit_bill(  # six visits in 12 months: silver
        f"H-{n}", phone, day - timedelta(days=30 * n), [("洁牙", "CL", "300", "现金", "300")])]
    path = import_samples.write_xlsx(tmp_path / "visits.xlsx", bills, import_samples.VISIT_HEADERS)
    assert _imported(suite, path, "visits", **manager)["counts"]["imported"] == 6

    member = suite.call("GET", "/v1/members", params={"phone": phone}).json()["items"][0]
    history = suite.call("GET", f"/v1/members/{member['id']}/visits").json()["items"]
    assert [(visit["bill_id"], visit["imported"]) for visit in history] == [(f"H-{n}", True) for n in range(6)]
    wait_for(lambda: suite.call("GET", f"/v1/members/{member['id']}/tier").json()["tier"] == "silver",
             message="the tier placed on the imported visits")
