"""Historical visits imported through the interfaces service (issue 19), with members, records, points and
notifications on the real broker and PostgreSQL: a dry run lists the bad lines, the commit stores each bill
once as an imported visit (batches never cut a bill), the same file again imports nothing; the member's tier
is then what the programme's rules give for that history, and nothing a live visit sets off happens (no
points, no follow-ups, no messages)."""

from __future__ import annotations

import os
import signal
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from services.interfaces.service import InterfacesService
from services.kit.caller import Identity
from services.members.rules import tiers
from services.members.rules.programme import programme_from_document
from services.members.service import MembersService
from services.notifications.service import NotificationsService
from services.points.service import PointsService
from services.records.service import RecordsService
from tests import import_samples
from tests.harness import REPO, events_handled, scalar, wait_for
from tests.integration.records_support import events, local_today
from tests.integration.test_import_resume import interfaces_process  # noqa: F401 (a fixture)
from tests.integration.test_imports import report, settled, upload
from tests.integration.test_imports_balances import member_ids, run

ADMIN = Identity(kind="staff", subject="admin", role="group_admin", branches=("*",))
PEOPLE = 12


@pytest.fixture
def suite(start_service, rpc, tmp_path):
    services = {"members": start_service(MembersService, "postgresql"),
                "records": start_service(RecordsService, "postgresql"),
                "points": start_service(PointsService, "postgresql"),
                "notifications": start_service(NotificationsService, "postgresql",
                                               NOTIFICATIONS={"scheduler": False, "quiet_hours": "off"})}
    start_service(InterfacesService, "postgresql", IMPORT_DIR=str(tmp_path / "imports"), IMPORT_BATCH_ROWS=5)
    proxy = rpc(caller=ADMIN, timeout=60)
    run(proxy, import_samples.write_csv(tmp_path / "members.csv", import_samples.members(PEOPLE)), "members")
    return services, proxy


def nothing_set_off(services: dict, ids: list[str]) -> None:
    """What a live completion sets off did not happen: records announced no completion (points earn on
    nothing else), opened no follow-up; points holds no posting."""
    assert events(services["records"].database_url, "visit_completed") == []
    assert scalar(services["records"].database_url, "SELECT count(*) FROM follow_ups") == 0
    assert scalar(services["points"].database_url, "SELECT count(*) FROM points_postings") == 0


def test_visits_dry_run_lists_bad_lines_commit_stores_each_bill_once_and_a_rerun_imports_none(suite, tmp_path):
    services, proxy = suite
    bad = [(2, "amount"), (4, "future"), (6, "unknown"), (8, "category"), (10, "unpaid")]
    rows = [*import_samples.visits(PEOPLE, 2, bad), ["B000000-0", import_samples.person(0)[1], "SH01",
                                                     "2026-01-05", None, "检查", "EX01", "10.00", "现金", "10.00"]]
    path = import_samples.write_csv(tmp_path / "visits.csv", rows, headers=import_samples.VISIT_HEADERS)
    lines = len(rows)  # 12 people x 2 bills x 2 lines, and a line of person 0's first bill again at the end

    job = upload(proxy, path, kind="visits")
    proxy.interfaces.start_import_check(job["id"])
    checked = settled(proxy, job["id"], "validated")
    assert checked["total_rows"] == lines
    assert checked["counts"] == {"valid": lines - 11, "invalid": 11, "present": 0, "repeated": 0, "imported": 0}
    issues = sorted((issue["row"], issue["column"], issue["value"], issue["message"])
                    for issue in report(proxy, job["id"]))
    # rows as Excel numbers them: person i's bill b is rows 2 + 4i + 2b and the next
    assert [(row, column, value) for row, column, value, _message in issues if column] == [
        (10, "金额", "一百元"), (18, "就诊日期", f"{import_samples.BAD_VISITS['future']} 10:30"),
        (26, "手机号", "13800000000"), (35, "项目类别", "美容"), (42, "实收金额", "250.00")]
    messages = {row: message for row, _column, _value, message in issues}
    assert "future" in messages[18] and "not a procedure category" in messages[35] and "add up" in messages[42]
    assert messages[11] == "Bill B000002-0 is not imported: a line of it is wrong (row 10)."
    assert messages[19] == "Bill B000004-0 is not imported: see row 18."
    assert messages[lines + 1] == "The lines of bill B000000-0 must follow each other: it began at row 2."
    assert len(issues) == 11
    assert scalar(services["records"].database_url, "SELECT count(*) FROM visits") == 0  # a dry run stores nothing

    proxy.interfaces.commit_import(job["id"], idempotency_key=f"commit-{job['id']}")
    done = settled(proxy, job["id"], "done")
    assert done["counts"] == {"valid": 0, "invalid": 11, "present": 0, "repeated": 0, "imported": lines - 11}
    ids = member_ids(proxy, PEOPLE)
    history = proxy.records.list_visits(ids[0])["items"]
    assert [(v["bill_id"], v["status"], v["imported"], v["kind"], v["total_minor"], v["qualifying_minor"])
            for v in history] == [("B000000-0", "completed", True, "return", 30000, 30000),
                                  ("B000000-1", "completed", True, "first", 30000, 30000)]
    assert history[0]["items"] == [{"category": "exam", "code": "EX01", "amount_minor": 10000},
                                   {"category": "treatment", "code": "补牙", "amount_minor": 20000}]
    assert history[0]["payments"] == [{"method": "mobile", "amount_minor": 30000}]
    assert history[0]["completed_at"].startswith((local_today() - timedelta(days=1)).isoformat())
    assert proxy.records.list_visits(ids[2])["items"][0]["bill_id"] == "B000002-1"  # its bad bill left out
    imported = events(services["records"].database_url, "visits_imported")
    assert sum(len(event["visits"]) for event in imported) == (lines - 11) // 2
    wait_for(lambda: proxy.members.tier(ids[0])["lifetime"]["visits"] == 2, message="members counting the history")
    assert proxy.members.tier(ids[0])["activity"]["spend_minor"] == 60000
    nothing_set_off(services, ids)

    again_checked, again = run(proxy, path, "visits")  # the same file, a new job
    assert again_checked["counts"] == {"valid": 0, "invalid": 11, "present": lines - 11, "repeated": 0,
                                       "imported": 0}
    assert again["counts"]["imported"] == 0 and again["counts"]["present"] == lines - 11
    assert scalar(services["records"].database_url, "SELECT count(*) FROM visits") == (lines - 11) // 2
    assert len(events(services["records"].database_url, "visits_imported")) == len(imported)


def expected_tier(spend_minor: int, visits: int) -> str:
    programme = programme_from_document(yaml.safe_load((REPO / "config" / "programme.yml").read_text()))
    return tiers.evaluate(programme, tiers.Activity(spend_minor=spend_minor, visits=visits)).tier


def test_imported_history_places_the_tier_by_the_programme_rules_without_points_or_messages(suite, tmp_path):
    services, proxy = suite
    today, phone = local_today(), [import_samples.person(i)[1] for i in range(4)]
    big = ("治疗", "RCT", "12,000.00", "刷卡", "12,000.00")
    sheet = [
        *import_samples.visit_bill("G-1", phone[0], today - timedelta(days=10), [big]),  # 24,000 in 12 months
        *import_samples.visit_bill("G-2", phone[0], today - timedelta(days=40), [big]),
        *(line for n in range(6) for line in import_samples.visit_bill(  # six small visits: the visits path
            f"S-{n}", phone[1], today - timedelta(days=20 + 30 * n), [("洁牙", "CL", "300", "现金", "300")])),
        *import_samples.visit_bill("O-1", phone[2], today - timedelta(days=400),  # big, but over a year ago
                                   [("种植", "IMP", "60000", "刷卡", "60000")]),
        *import_samples.visit_bill("P-1", phone[3], today - timedelta(days=10),  # paid in points: no spend
                                   [("正畸", "ORT", "60000", "积分", "60000")]),
    ]
    path = import_samples.write_xlsx(tmp_path / "visits.xlsx", sheet, import_samples.VISIT_HEADERS)
    ids = member_ids(proxy, 4)
    handled = events_handled("notifications", "on_tier_changed", "ok")
    _checked, done = run(proxy, path, "visits")
    assert done["counts"]["imported"] == len(sheet)

    expected = [expected_tier(2_400_000, 2), expected_tier(180_000, 6), expected_tier(0, 0), expected_tier(0, 1)]
    assert expected == ["gold", "silver", "standard", "standard"]  # the sheet covers each path
    for member_id, tier, visits in zip(ids, expected, (2, 6, 1, 1), strict=True):
        wait_for(lambda m=member_id, v=visits: proxy.members.tier(m)["lifetime"]["visits"] == v,
                 message="members counting the history")
        assert proxy.members.tier(member_id)["tier"] == tier
    assert [(c["from_tier"], c["to_tier"], c["reason"]) for c in proxy.members.tier_history(ids[0])["items"]] == [
        ("standard", "gold", "import")]
    assert proxy.members.tier(ids[0])["activity"]["spend_minor"] == 2_400_000

    # notifications heard both placements and sent nothing for them; points learnt the tiers and earned nothing
    wait_for(lambda: events_handled("notifications", "on_tier_changed", "ok") >= handled + 2,
             message="notifications handling the tier changes")
    assert scalar(services["notifications"].database_url,
                  "SELECT count(*) FROM deliveries WHERE journey <> 'welcome'") == 0
    wait_for(lambda: scalar(services["points"].database_url, "SELECT tier FROM points_members WHERE member_id = :m",
                            m=ids[0]) == "gold", message="points learning the tier")
    assert [proxy.points.balance(member_id)["balance"] for member_id in ids] == [0, 0, 0, 0]
    nothing_set_off(services, ids)


@pytest.mark.timeout(900)
def test_a_visits_import_killed_half_way_resumes_and_stores_each_bill_once(
        start_service, rpc, databases, interfaces_process, tmp_path: Path):  # noqa: F811
    people, batch = 200, 20
    start_service(MembersService, "postgresql")
    records = start_service(RecordsService, "postgresql")
    url = databases.fresh("postgresql", "interfaces")
    first = interfaces_process(url, IMPORT_BATCH_ROWS=str(batch))
    proxy = rpc(caller=ADMIN, timeout=60)
    run(proxy, import_samples.write_csv(tmp_path / "members.csv", import_samples.members(people)), "members")

    path = import_samples.write_csv(tmp_path / "visits.csv", import_samples.visits(people, 1),
                                    headers=import_samples.VISIT_HEADERS)
    job = upload(proxy, path, kind="visits")
    proxy.interfaces.start_import_check(job["id"])
    settled(proxy, job["id"], "validated", timeout=600)
    proxy.interfaces.commit_import(job["id"], idempotency_key=f"commit-{job['id']}")
    wait_for(lambda: proxy.interfaces.get_import(job["id"])["processed_rows"] >= people, timeout=600,
             interval=0.1, message="half the lines imported")
    os.kill(first.pid, signal.SIGKILL)
    assert first.wait(timeout=15) == -signal.SIGKILL
    stored_when_killed = scalar(records.database_url, "SELECT count(*) FROM visits")
    assert people // 2 <= stored_when_killed < people  # it really was half-way

    interfaces_process(url, IMPORT_BATCH_ROWS=str(batch))  # the restart carries the job on
    job = settled(proxy, job["id"], "done", timeout=600)
    assert job["counts"]["imported"] == 2 * people and job["counts"]["invalid"] == 0
    assert scalar(records.database_url, "SELECT count(*) FROM visits WHERE import_key IS NOT NULL") == people
    assert scalar(records.database_url, "SELECT count(DISTINCT member_id) FROM visits") == people
    assert scalar(records.database_url, "SELECT count(*) FROM visit_items") == 2 * people
    assert report(proxy, job["id"], "commit") == []


def test_a_bill_number_taken_between_the_check_and_the_insert_is_skipped_and_the_batch_stored(start_service, backend):
    """``imports._store`` (no savepoint a bill): the HIS sent a bill live after ``_new`` looked; the insert skips
    that bill number and stores the others of the batch."""
    import uuid
    from datetime import UTC, datetime

    from sqlalchemy import func, insert, select

    from services.kit.config import group_from_config
    from services.kit.schemas import load
    from services.records import imports
    from services.records.models import Patient, Visit, VisitItem
    from services.records.rules import lifecycle
    from services.records.schemas import ImportedBillSchema
    from tests.harness import store_for
    from tests.perf.visits_import_profile import bills

    container = start_service(RecordsService, backend)
    store = store_for(container.database_url)
    try:
        member = uuid.uuid4()
        with store.transaction() as session:
            session.execute(insert(Patient).values(member_id=member, home_branch="SH01", completed_visits=0,
                                                   paid_visits=0, created_at=datetime.now(UTC)))
        live, fresh = (dict(bill, bill_id=number, key=f"import:race:{number}")
                       for bill, number in zip(bills([member], "race"), ("LIVE-1", "FRESH-1"), strict=True))
        with store.transaction() as session:  # the HIS's bill, committed first
            patient = session.get(Patient, member)
            checked = [(0, patient, load(ImportedBillSchema(), live))]
            imports._store(session, [(p, pt, b, lifecycle.check_bill(b["items"], b["payments"], "CNY", "CNY"))
                                     for p, pt, b in checked], group_from_config({}), datetime.now(UTC))
        with store.transaction() as session:
            patient = session.get(Patient, member)
            batch = [(position, patient, bill, lifecycle.check_bill(bill["items"], bill["payments"], "CNY", "CNY"))
                     for position, bill in enumerate(load(ImportedBillSchema(), row) for row in (live, fresh))]
            stored = imports._store(session, batch, group_from_config({}), datetime.now(UTC))
            assert sorted(stored) == [1]
        with store.transaction() as session:
            assert sorted(session.scalars(select(Visit.bill_id))) == ["FRESH-1", "LIVE-1"]
            assert session.scalar(select(func.count()).select_from(VisitItem)) == 4
    finally:
        store.dispose()
