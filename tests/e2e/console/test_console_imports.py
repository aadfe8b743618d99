"""The console's imports page in Debian's Chromium: a branch manager uploads a members sheet, checks it, reads the
report of the bad rows, imports the rest and sees the progress bar follow the job part-way; the front desk may not."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text

from tests import import_samples
from tests.e2e.console.test_console import signed_in
from tests.harness import scalar, store_for, wait_for

pytestmark = pytest.mark.timeout(300)
ROWS = 2500  # five batches of the import (IMPORT_BATCH_ROWS 500)
BAD = [(10, "phone"), (700, "birth_date"), (2400, "phone")]


@contextmanager
def held_after_first_batch(url: str, job_id: str) -> Iterator[tuple[int, int]]:
    """The import's job kept between two batches: once its first batch is recorded, the job's row is locked
    (``FOR UPDATE``, as each batch's step locks it first), so the next step waits and the job stays part-done
    while the browser looks; yields the rows processed then and the sheet's rows. A quiet machine imports the
    whole sheet between two of the page's polls otherwise, and the bar would only ever show 0 and 100 %."""
    store = store_for(url)
    try:
        def importing() -> bool:
            with store.transaction() as session:
                return session.execute(text("SELECT state = 'importing' AND processed_rows > 0 FROM import_jobs "
                                            "WHERE id = :id"), {"id": job_id}).scalar()

        wait_for(importing, timeout=120, interval=0.005, message="the import's first batch")
        with store.transaction() as session:  # a step under way commits first: the lock waits for it
            done, total, state = session.execute(text(
                "SELECT processed_rows, total_rows, state FROM import_jobs WHERE id = :id FOR UPDATE"),
                {"id": job_id}).one()
            assert state == "importing" and 0 < done < total, (state, done, total)
            yield done, total
    finally:
        store.dispose()


@pytest.mark.backends("postgresql")  # the job is held mid-way by a row lock, which SQLite does not take
def test_a_branch_manager_uploads_checks_and_imports_following_the_progress_bar(suite, open_browser, tmp_path: Path,
                                                                              screenshots):
    desk, _ = signed_in(suite, open_browser, "front_desk")
    assert desk.count("#nav-imports") == 0
    assert desk.goto("/console/imports") == 403

    manager, _ = signed_in(suite, open_browser, "branch_manager")
    assert manager.count("#nav-imports") == 1
    assert manager.goto("/console/imports") == 200
    assert manager.count("#imports-none") == 1
    sheet = import_samples.write_csv(tmp_path / "会员.csv", import_samples.members(ROWS, BAD), encoding="gb18030")
    manager.page("set_input_files", "#import-file", str(sheet))
    manager.page("select_option", "#import-branch", "SH01")
    manager.page("click", "#import-upload")
    manager.page("wait_for_url", "**/console/imports/*")
    job_id = manager.page("evaluate", "document.getElementById('import-job').dataset.job")
    assert manager.text("#import-state") == "uploaded"

    manager.page("click", "#import-check")

    def reached(state: str) -> Callable[[], bool]:
        def sample() -> bool:  # the job's state as the page shows it, until the page reloads at the phase's end
            try:
                now = manager.page("evaluate", "document.getElementById('import-job').dataset.state")
            except AssertionError as error:  # the page reloading between two documents: sample again
                if "context was destroyed" in str(error) or "navigat" in str(error) or "null" in str(error):
                    return False
                raise
            return now == state
        return sample

    wait_for(reached("validated"), timeout=180, interval=0.2, message="the dry run, seen in the browser")  # at 100
    assert manager.page("evaluate", "document.getElementById('import-progress').value") == 100
    assert manager.text("[data-count=invalid] td") == "3" and manager.text("[data-count=valid] td") == "2,497"
    manager.page("screenshot", path=str(screenshots / "imports-checked-en.png"), full_page=True)

    report = manager.page("evaluate", f"fetch('/console/imports/{job_id}/report?phase=dry_run')"
                                      ".then(r => r.text())")
    rows = list(csv.DictReader(io.StringIO(report.lstrip("\ufeff"))))
    assert sorted(int(row["row"]) for row in rows) == [12, 702, 2402]  # the sheet's rows (header = row 1)

    # a commit posted without the form's CSRF token changes nothing
    refused = manager.post(f"/console/imports/{job_id}/commit", {"idempotency_key": "x"})
    assert refused["status"] == 403
    assert scalar(suite.database_urls["interfaces"], f"SELECT state FROM import_jobs WHERE id = '{job_id}'") == \
        "validated"

    manager.page("dblclick", "#import-commit")  # a double click imports once
    with held_after_first_batch(suite.database_urls["interfaces"], job_id) as (done, total):
        part = round(100 * done / total, 1)
        wait_for(lambda: manager.page("evaluate", "document.getElementById('import-progress').value") == part,
                 timeout=30, interval=0.2, message=f"the bar at {part} % while the import waits")
        assert manager.text("#import-percent") == f"{part:.1f} %"
    wait_for(reached("done"), timeout=240, interval=0.2, message="the import, seen in the browser")
    assert manager.text("[data-count=imported] td") == "2,497"
    assert scalar(suite.database_urls["members"], "SELECT count(*) FROM members") == ROWS - len(BAD)
    assert manager.goto("/console/imports") == 200
    assert manager.text(f"tr[data-job='{job_id}'] td:nth-child(3)") == "done"


def test_an_upload_without_a_file_says_what_to_do(suite, open_browser):
    admin, _ = signed_in(suite, open_browser, "group_admin", ("*",))
    admin.goto("/console/imports")
    admin.page("evaluate", "document.getElementById('import-file').removeAttribute('required')")
    admin.page("click", "#import-upload")
    admin.page("wait_for_selector", "text=Choose a .csv or .xlsx file to upload.")
    assert scalar(suite.database_urls["interfaces"], "SELECT count(*) FROM import_jobs") == 0
