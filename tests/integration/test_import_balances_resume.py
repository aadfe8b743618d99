"""An opening-balances import killed half-way (SIGKILL of the interfaces process doing it) resumes where it
stopped and ends with each row's balance posted exactly once, the ledgers reconciling (issue 19)."""

from __future__ import annotations

import os
import signal

import pytest

from services.kit.caller import Identity
from services.members.service import MembersService
from services.points.service import PointsService
from tests import import_samples
from tests.harness import scalar, wait_for
from tests.integration.test_import_resume import interfaces_process  # noqa: F401 (a fixture)
from tests.integration.test_imports import report, settled, upload

ADMIN = Identity(kind="staff", subject="admin", role="group_admin", branches=("*",))
ROWS, BATCH = 400, 20


@pytest.mark.timeout(900)
@pytest.mark.backends("postgresql")
def test_a_points_openings_import_killed_half_way_resumes_and_posts_each_row_once(
        start_service, rpc, databases, interfaces_process, tmp_path):  # noqa: F811
    start_service(MembersService, "postgresql")
    points = start_service(PointsService, "postgresql")
    url = databases.fresh("postgresql", "interfaces")
    first = interfaces_process(url, IMPORT_BATCH_ROWS=str(BATCH))
    proxy = rpc(caller=ADMIN, timeout=60)
    people = upload(proxy, import_samples.write_csv(tmp_path / "members.csv", import_samples.members(ROWS)))
    proxy.interfaces.start_import_check(people["id"])
    settled(proxy, people["id"], "validated", timeout=600)
    proxy.interfaces.commit_import(people["id"], idempotency_key=f"commit-{people['id']}")
    settled(proxy, people["id"], "done", timeout=600)

    path = import_samples.write_csv(tmp_path / "points.csv", import_samples.points_openings(ROWS),
                                    headers=import_samples.POINTS_HEADERS)
    job = upload(proxy, path, kind="points_openings")
    proxy.interfaces.start_import_check(job["id"])
    settled(proxy, job["id"], "validated", timeout=600)
    proxy.interfaces.commit_import(job["id"], idempotency_key=f"commit-{job['id']}")
    wait_for(lambda: proxy.interfaces.get_import(job["id"])["processed_rows"] >= ROWS // 2, timeout=600,
             interval=0.1, message="half the rows posted")
    os.kill(first.pid, signal.SIGKILL)
    assert first.wait(timeout=15) == -signal.SIGKILL
    posted_when_killed = scalar(points.database_url, "SELECT count(*) FROM points_postings WHERE rule = 'opening'")
    assert ROWS // 2 <= posted_when_killed < ROWS  # it really was half-way

    interfaces_process(url, IMPORT_BATCH_ROWS=str(BATCH))  # the restart carries the job on
    job = settled(proxy, job["id"], "done", timeout=600)
    assert job["counts"]["imported"] == ROWS and job["counts"]["invalid"] == 0 and job["counts"]["present"] == 0
    assert scalar(points.database_url, "SELECT count(*) FROM points_postings WHERE rule = 'opening'") == ROWS
    assert scalar(points.database_url, "SELECT count(DISTINCT member_id) FROM points_lots") == ROWS
    assert scalar(points.database_url, "SELECT sum(points) FROM points_postings WHERE rule = 'opening'") == sum(
        100 + i for i in range(ROWS))
    assert proxy.points.reconcile(limit=10_000)["ok"]
    assert report(proxy, job["id"], "commit") == []
