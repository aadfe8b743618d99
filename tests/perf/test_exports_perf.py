"""Benchmark: the warehouse's export of points postings through the gateway (issue 19), beside the COPY that
wrote the same rows.

    nice -n 19 .venv/bin/python -m pytest tests/perf/test_exports_perf.py -m perf -s -p no:randomly

Prints rows a second of the whole export (one RPC per 2,000 rows, spooled CSV, then sent) and how much the
test process's peak memory (every service and the gateway run in it) grew during the export: the spool goes
to disk past 8 MiB and each page is dropped once written, so the growth must not follow the row count.
"""

from __future__ import annotations

import csv
import itertools
import json
import resource
import time

import pytest

from tests.e2e.conftest import start_suite  # noqa: F401 (fixture)
from tests.perf.points_data import fill

pytestmark = pytest.mark.perf


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.timeout(3600)
@pytest.mark.parametrize("accounts", [2_000, 20_000])  # 10 postings each: 20,000 and 200,000 rows
def test_points_postings_export_streams_in_flat_memory(start_suite, accounts):  # noqa: F811
    suite = start_suite(points_config={"EXPORT_SAFETY_LAG_SECONDS": 0})
    started = time.perf_counter()
    fill(suite.database_urls["points"], accounts=accounts, lots_per_account=10)
    copy_seconds = time.perf_counter() - started
    before = peak_rss_mib()
    started = time.perf_counter()
    ids, size = set(), 0
    with suite.http.get(suite.base_url + "/v1/exports/points-postings", stream=True, timeout=3000,
                        headers={"Authorization": f"Bearer {suite.key('integration')}"}) as answer:
        assert answer.status_code == 200, answer.text
        lines = (line.decode() for line in answer.iter_lines(1 << 20))
        for row in itertools.islice(csv.reader(lines), 1, None):  # after the header
            ids.add(int(row[0]))
            size += 1
    seconds = time.perf_counter() - started
    rows = len(ids)
    # every posting written before, each once; the points service's own jobs may post meanwhile (the data set's
    # lots are past their expiry, so the expiry job writes postings while the export runs): those come too
    assert size == rows and ids >= set(range(1, accounts * 10 + 1))
    report = {"rows": rows, "written_meanwhile": rows - accounts * 10, "export_seconds": round(seconds, 1), "export_rows_per_s": round(rows / seconds),
              "copy_rows_per_s (points_data.fill, 4 tables)":
              round(rows / copy_seconds), "peak_rss_before_mib": round(before),
              "peak_rss_growth_mib": round(peak_rss_mib() - before, 1)}
    print(f"\nEXPORT POINTS POSTINGS {rows} " + json.dumps(report, indent=1))
