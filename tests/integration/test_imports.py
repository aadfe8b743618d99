"""Members import through the interfaces service (issue 19), with members, the real broker and database:
dry run, row-by-row report, commit in batches, a second import of the same file, encodings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.interfaces.service import InterfacesService
from services.kit.caller import Identity
from services.kit.errors import Conflict, Forbidden, Invalid, TooLarge
from services.members.service import MembersService
from tests import import_samples
from tests.harness import REPO, scalar, wait_for

ADMIN = Identity(kind="staff", subject="admin", role="group_admin", branches=("*",))
MANAGER = Identity(kind="staff", subject="m1", role="branch_manager", branches=("HZ01",))
CHUNK = 256 * 1024


@pytest.fixture
def suite(start_service, rpc, backend, tmp_path):
    members = start_service(MembersService, backend)
    interfaces = start_service(InterfacesService, backend, IMPORT_DIR=str(tmp_path / "imports"),
                               IMPORT_BATCH_ROWS=200)
    return members, interfaces, rpc(caller=ADMIN, timeout=60)


def upload(proxy, path: Path, **spec) -> dict:
    job = proxy.interfaces.create_import({"kind": "members", "filename": path.name, **spec})
    data = path.read_bytes()
    for offset in range(0, len(data), CHUNK):
        job = proxy.interfaces.add_import_chunk(job["id"], {"offset": offset, "data": data[offset:offset + CHUNK]})
    assert job["size_bytes"] == len(data)
    return job


def settled(proxy, job_id: str, state: str, timeout: float = 120) -> dict:
    def reached():
        job = proxy.interfaces.get_import(job_id)
        assert job["state"] not in ("failed", "cancelled"), job
        return job if job["state"] == state else None
    return wait_for(reached, timeout=timeout, interval=0.2, message=f"import {state}")


def report(proxy, job_id: str, phase: str = "dry_run") -> list[dict]:
    items, cursor = [], None
    while True:
        page = proxy.interfaces.import_report(job_id, phase, 500, cursor)
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def test_a_sheet_of_1000_with_3_bad_rows_imports_997_and_a_second_time_none(suite, tmp_path):
    members, _interfaces, proxy = suite
    bad = [(10, "phone"), (500, "birth_date"), (998, "date_text")]
    path = import_samples.write_xlsx(tmp_path / "members.xlsx", import_samples.members(1000, bad))

    job = upload(proxy, path)
    proxy.interfaces.start_import_check(job["id"])
    job = settled(proxy, job["id"], "validated")
    assert job["total_rows"] == 1000 and job["percent"] == 100.0 and job["rows_per_second"] > 0
    assert job["counts"] == {"valid": 997, "invalid": 3, "present": 0, "repeated": 0, "imported": 0}
    assert job["columns"]["found"] == {"full_name": "姓名", "phone": "手机号", "birth_date": "出生日期",
                                       "gender": "性别", "home_branch": "门店", "card_number": "会员卡号"}
    assert job["columns"]["ignored"] == []
    issues = report(proxy, job["id"])
    assert [(issue["row"], issue["column"], issue["value"]) for issue in issues] == [
        (12, "手机号", "12345"), (502, "出生日期", import_samples.BAD_ROWS["birth_date"][0]), (1000, "出生日期", "三月五日")]
    assert "phone" in issues[0]["message"] and "future" in issues[1]["message"] and "not a date" in issues[2]["message"]
    assert scalar(members.database_url, "SELECT count(*) FROM members") == 0  # a dry run writes nothing

    proxy.interfaces.commit_import(job["id"], idempotency_key=f"commit-{job['id']}")
    job = settled(proxy, job["id"], "done")
    assert job["counts"]["imported"] == 997 and job["counts"]["invalid"] == 3
    assert scalar(members.database_url, "SELECT count(*) FROM members WHERE source = 'import'") == 997
    # each keeps the card number of the old system (person i's is OLD00000i): free, so it is the member's card
    assert scalar(members.database_url, "SELECT count(*) FROM members WHERE card_number LIKE 'OLD%'") == 997
    assert scalar(members.database_url, "SELECT count(*) FROM members WHERE card_number IN "
                                        "('OLD000010', 'OLD000500', 'OLD000998')") == 0  # the bad rows' cards

    again = upload(proxy, path)
    proxy.interfaces.start_import_check(again["id"])
    again = settled(proxy, again["id"], "validated")
    assert again["counts"] == {"valid": 0, "invalid": 3, "present": 997, "repeated": 0, "imported": 0}
    proxy.interfaces.commit_import(again["id"], idempotency_key=f"commit-{again['id']}")
    again = settled(proxy, again["id"], "done")
    assert again["counts"]["imported"] == 0 and again["counts"]["present"] == 997
    assert scalar(members.database_url, "SELECT count(*) FROM members") == 997
    present = [issue for issue in report(proxy, again["id"], "commit") if issue["column"] == ""]
    assert len(present) == 997 and all(issue["message"].startswith("Already a member") for issue in present)
    assert scalar(members.database_url, "SELECT count(*) FROM kit_idempotency WHERE command = 'enrol_import'") == 997


def test_a_gb18030_csv_imports_the_same_members_as_its_utf8_twin(suite, tmp_path):
    members, _interfaces, proxy = suite
    rows = list(import_samples.members(40))
    utf8 = import_samples.write_csv(tmp_path / "utf8.csv", rows, "utf-8")
    gb = import_samples.write_csv(tmp_path / "gb.csv", rows, "gb18030")
    first = upload(proxy, utf8)
    proxy.interfaces.start_import_check(first["id"])
    settled(proxy, first["id"], "validated")
    proxy.interfaces.commit_import(first["id"], idempotency_key="c1")
    assert settled(proxy, first["id"], "done")["counts"]["imported"] == 40

    twin = upload(proxy, gb)
    proxy.interfaces.start_import_check(twin["id"])
    twin = settled(proxy, twin["id"], "validated")
    assert twin["encoding"] == "gb18030"
    assert twin["counts"] == {"valid": 0, "invalid": 0, "present": 40, "repeated": 0, "imported": 0}


def test_the_messy_sheet_reports_each_mistake_on_its_row(suite, tmp_path):
    _members, _interfaces, proxy = suite
    path = import_samples.write_messy_sheet(tmp_path / "messy.xlsx")
    job = upload(proxy, path, default_branch="SH01")
    proxy.interfaces.start_import_check(job["id"])
    job = settled(proxy, job["id"], "validated")
    by_row = {}
    for issue in report(proxy, job["id"]):
        by_row.setdefault(issue["row"], []).append(issue["message"])
    assert set(by_row) == {3, 4, 6, 10}, by_row
    assert "phone" in by_row[3][0] and "future" in by_row[4][0] and by_row[6] == ["The same person as row 2."]
    assert job["counts"] == {"valid": 5, "invalid": 3, "present": 0, "repeated": 1, "imported": 0}


def test_a_branch_manager_imports_for_their_branches_only(suite, rpc, tmp_path):
    _members, _interfaces, proxy = suite
    manager = rpc(caller=MANAGER, timeout=60)
    path = import_samples.write_csv(tmp_path / "sh.csv", import_samples.members(3))
    with pytest.raises(Forbidden):
        upload(manager, path, default_branch="SH01")
    job = upload(manager, path, default_branch="HZ01")
    manager.interfaces.start_import_check(job["id"])
    job = settled(manager, job["id"], "validated")
    assert job["counts"]["invalid"] == 3  # the rows name SH01
    assert {issue["message"] for issue in report(manager, job["id"])} == {"Not one of your branches."}
    with pytest.raises(Conflict):  # a file checked cannot change under its report
        manager.interfaces.add_import_chunk(job["id"], {"offset": 0, "data": b"x"})
    admin_job = upload(proxy, path)
    with pytest.raises(Forbidden):
        manager.interfaces.get_import(admin_job["id"])


def test_the_command_line_checks_a_sheet_with_a_progress_bar_and_writes_the_report(suite, amqp_uri, tmp_path):
    members, _interfaces, _proxy = suite
    path = import_samples.write_xlsx(tmp_path / "members.xlsx", import_samples.members(30, [(4, "phone")]))
    done = subprocess.run([sys.executable, "-m", "services.interfaces.imports", str(path), "--dry-run"],
                          cwd=REPO, env={**os.environ, "AMQP_URI": amqp_uri, "COLUMNS": "100"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "checking" in done.stderr and "valid 29, invalid 1" in done.stderr
    lines = (tmp_path / "members.report.csv").read_text(encoding="utf-8-sig").splitlines()
    assert lines[0] == "row,column,value,message" and lines[1].startswith("6,手机号,12345,")
    assert scalar(members.database_url, "SELECT count(*) FROM members") == 0


def test_a_cancelled_commit_stops_after_the_batch_in_hand(start_service, rpc, backend, tmp_path):
    members = start_service(MembersService, backend)
    interfaces = start_service(InterfacesService, backend, IMPORT_DIR=str(tmp_path / "imports"), IMPORT_BATCH_ROWS=50)
    proxy = rpc(caller=ADMIN, timeout=60)
    job = upload(proxy, import_samples.write_csv(tmp_path / "m.csv", import_samples.members(3000)))
    proxy.interfaces.start_import_check(job["id"])
    settled(proxy, job["id"], "validated")
    proxy.interfaces.commit_import(job["id"], idempotency_key="c")
    wait_for(lambda: proxy.interfaces.get_import(job["id"])["processed_rows"] > 0, timeout=60, message="started")
    assert proxy.interfaces.cancel_import(job["id"])["state"] == "cancelled"
    wait_for(lambda: scalar(interfaces.database_url, "SELECT count(*) FROM kit_job_runs WHERE job = 'import_commit' "
                                                     "AND finished_at IS NOT NULL"), message="the run ended")
    job = proxy.interfaces.get_import(job["id"])
    assert job["state"] == "cancelled" and 0 < job["counts"]["imported"] < 3000
    assert scalar(members.database_url, "SELECT count(*) FROM members") == job["counts"]["imported"]
    with pytest.raises(Conflict):
        proxy.interfaces.commit_import(job["id"], idempotency_key="c2")


def test_an_upload_past_the_size_limit_or_out_of_order_is_refused(start_service, rpc, backend, tmp_path):
    start_service(InterfacesService, backend, IMPORT_DIR=str(tmp_path / "imports"), IMPORT_MAX_BYTES=1000)
    proxy = rpc(caller=ADMIN)
    job = proxy.interfaces.create_import({"kind": "members", "filename": "m.csv"})
    proxy.interfaces.add_import_chunk(job["id"], {"offset": 0, "data": b"a" * 600})
    proxy.interfaces.add_import_chunk(job["id"], {"offset": 0, "data": b"a" * 600})  # a retry: written once
    with pytest.raises(Conflict):
        proxy.interfaces.add_import_chunk(job["id"], {"offset": 700, "data": b"b"})
    with pytest.raises(TooLarge):
        proxy.interfaces.add_import_chunk(job["id"], {"offset": 600, "data": b"b" * 401})
    assert proxy.interfaces.get_import(job["id"])["size_bytes"] == 600
    with pytest.raises(Invalid):
        proxy.interfaces.create_import({"kind": "members", "filename": "m.pdf"})
