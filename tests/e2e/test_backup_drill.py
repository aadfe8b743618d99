"""The backup drill (deploy/backup_drill.py) on a small data set made through the API: every service's
database dumped and restored into a scratch database with the same rows, the same reconciliation and the
same audit counts; in place (--replace) on a copy of its own; and a copy whose ledger is off is caught."""

from __future__ import annotations

import subprocess
import tempfile
import uuid

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from deploy import backup_drill
from tests.e2e.test_paid_visit_flow import enrol, points_of
from tests.harness import wait_for

SH01 = ("SH01",)


def make_a_small_data_set(suite) -> None:
    for number in range(3):
        member = enrol(suite, f"Drill Patient {number}", f"1390000{number:04d}")
        visit = suite.call("POST", "/v1/visits", role="front_desk", branches=SH01,
                           json={"member_id": member["id"], "branch": "SH01"})
        assert visit.status_code == 201, visit.text
        paid = 10_000 * (number + 1)
        completed = suite.call("POST", f"/v1/visits/{visit.json()['id']}/complete", role="front_desk",
                               branches=SH01, json={
                                   "bill_id": f"HIS-{uuid.uuid4().hex[:8]}", "member_id": member["id"],
                                   "branch": "SH01", "currency": "CNY",
                                   "items": [{"category": "cleaning", "code": "CLN", "amount_minor": paid}],
                                   "payments": [{"method": "card", "amount_minor": paid}]})
        assert completed.status_code == 200, completed.text
        wait_for(lambda m=member: points_of(suite, m["id"]) > 0, message="points for the visit")
        topped = suite.call("POST", f"/v1/members/{member['id']}/wallet/top-ups", role="front_desk", branches=SH01,
                            headers={"Idempotency-Key": f"drill-top-up-{number}"},
                            json={"amount": {"amount": 500_00, "currency": "CNY"}, "branch": "SH01"})
        assert topped.status_code == 201, topped.text
        record = suite.call("GET", f"/v1/members/{member['id']}/record", role="clinician", branches=SH01,
                            headers={"X-Access-Reason": "backup drill data"})
        assert record.status_code == 200, record.text


def test_every_database_restores_with_the_same_rows_ledgers_and_audit_counts(suite):
    make_a_small_data_set(suite)
    outcomes = backup_drill.drill(suite.database_urls)
    print(backup_drill.table(outcomes))
    assert [outcome.service for outcome in outcomes] == list(suite.database_urls)
    for outcome in outcomes:
        assert outcome.ok, outcome.differences
        assert outcome.before == outcome.after and outcome.restored_as.startswith(make_url(
            suite.database_urls[outcome.service]).database + "_drill_")
    points = next(outcome for outcome in outcomes if outcome.service == "points").after
    assert points["reconciliation accounts checked"] >= 6 and points["reconciliation mismatches"] == 0
    assert points["wallet principal minor"] == 3 * 500_00 and points["points outstanding"] > 0
    records = next(outcome for outcome in outcomes if outcome.service == "records").after
    assert records["audit read granted"] >= 3

    # in place, on a database of the test's own (the suite's own databases are in use)
    points_url = suite.database_urls["points"]
    copy = make_url(points_url).set(database=f"drill_copy_{uuid.uuid4().hex[:8]}")
    copy_url = copy.render_as_string(hide_password=False)
    backup_drill._admin(points_url, f'CREATE DATABASE "{copy.database}"')
    try:
        with tempfile.NamedTemporaryFile(suffix=".dump") as dump:
            subprocess.run(["pg_dump", "--format=custom", "--no-owner", f"--file={dump.name}",
                            backup_drill.libpq_url(points_url)], check=True, timeout=300)
            subprocess.run(["pg_restore", "--no-owner", "--exit-on-error",
                            f"--dbname={backup_drill.libpq_url(copy_url)}", dump.name], check=True, timeout=300)
        (in_place,) = backup_drill.drill({"points": copy_url}, replace=True)
        assert in_place.ok and in_place.restored_as == copy.database
        assert in_place.after == points

        # a copy whose balance no longer matches its postings: the figures say so
        engine = create_engine(copy_url)
        with engine.begin() as connection:
            connection.execute(text("UPDATE points_accounts SET balance = balance + 1 WHERE member_id = "
                                    "(SELECT member_id FROM points_accounts ORDER BY member_id LIMIT 1)"))
        with engine.connect() as connection:
            damaged = backup_drill.figures(connection, "points")
        engine.dispose()
        assert damaged["reconciliation mismatches"] == 1
        assert damaged["points outstanding"] == in_place.after["points outstanding"] + 1
    finally:
        backup_drill._admin(points_url, f'DROP DATABASE IF EXISTS "{copy.database}" WITH (FORCE)')
