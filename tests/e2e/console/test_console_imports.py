"""The console's imports page in Debian's Chromium: a branch manager uploads a members sheet, watches the dry
run's progress bar move with the job, reads the report of the bad rows, imports the rest; the front desk may not."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import import_samples
from tests.e2e.console.test_console import signed_in
from tests.harness import scalar, wait_for

pytestmark = pytest.mark.timeout(300)
ROWS = 2500  # enough rows for the dry run to take a few seconds, so the bar is seen between 0 and 100
BAD = [(10, "phone"), (700, "birth_date"), (2400, "phone")]


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
    seen: list[float] = []

    def reached(state: str) -> Callable[[], bool]:
        def sample() -> bool:  # the bar as the browser shows it, sampled until the page reloads at the phase's end
            try:
                value, now = manager.page("evaluate", "[document.getElementById('import-progress').value, "
                                                      "document.getElementById('import-job').dataset.state]")
            except AssertionError as error:  # the page reloading between two documents: sample again
                if "context was destroyed" in str(error) or "navigat" in str(error) or "null" in str(error):
                    return False
                raise
            seen.append(value)
            return now == state
        return sample

    wait_for(reached("validated"), timeout=180, interval=0.2, message="the dry run, seen in the browser")
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
    wait_for(reached("done"), timeout=240, interval=0.2, message="the import, seen in the browser")
    # the bar followed the job: seen between 0 and 100 % in one of the two phases (the dry run may be over
    # before the page first asks on a quiet machine; the import, a batch at a time, is not)
    moving = [value for value in seen if 0 < value < 100]
    assert moving, f"the bar never showed the job between 0 and 100 %: {sorted(set(seen))}"
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
