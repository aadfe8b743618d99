"""Benchmark: the warehouse's exports of points postings and of members through the gateway (issue 19), beside
the COPY that wrote the same rows.

    nice -n 19 .venv/bin/python -m pytest tests/perf/test_exports_perf.py -m perf -s -p no:randomly
    # members: PERF_EXPORT_MEMBERS=100000,1000000 (the default; the issue's sizes)

Prints rows a second of the whole export (one RPC per 2,000 rows, spooled CSV, then sent) and how much the
test process's peak memory (every service and the gateway run in it) grew during the export: the spool goes
to disk past 8 MiB and each page is dropped once written, so the growth must not follow the row count.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import resource
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import start_suite  # noqa: F401 (fixture)
from tests.perf.export_data import fill_members
from tests.perf.points_data import fill

pytestmark = pytest.mark.perf
MEMBER_SIZES = [int(size) for size in os.environ.get("PERF_EXPORT_MEMBERS", "100000,1000000").split(",")]


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


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


@pytest.mark.timeout(7200)
@pytest.mark.parametrize("members", MEMBER_SIZES)
def test_members_export_streams_in_flat_memory(start_suite, members):  # noqa: F811
    """Every member through ``GET /v1/exports/members`` as the warehouse's key; the test process's peak memory
    (``VmHWM``, reset just before the export: every service and the gateway run here) must not follow the count."""
    suite = start_suite(members_config={"EXPORT_SAFETY_LAG_SECONDS": 0})
    url = suite.database_urls["members"].replace("postgresql+psycopg2://", "postgresql://")
    started = time.perf_counter()
    fill_members(url, members)
    copy_seconds = time.perf_counter() - started
    key = suite.key("integration")
    Path("/proc/self/clear_refs").write_text("5")  # the peak starts again from what the process holds now
    before = _status_kib("VmRSS") / 1024
    started, cpu = time.perf_counter(), time.process_time()
    rows, size, load, retried = 0, 0, [os.getloadavg()[0]], 0
    while True:  # a 503 (the shared PostgreSQL refusing clients under load) is retried once, as a client would
        answer = suite.http.get(suite.base_url + "/v1/exports/members", stream=True, timeout=7000,
                                headers={"Authorization": f"Bearer {key}"})
        if answer.status_code != 503 or retried:
            break
        answer.close()
        retried += 1
        time.sleep(float(answer.headers.get("Retry-After", 5)))
    with answer:
        assert answer.status_code == 200, answer.text
        cursor = answer.headers["X-Export-Cursor"]
        load.append(os.getloadavg()[0])  # the export is written (spooled) before the first byte is sent
        header = None
        for line in answer.iter_lines(1 << 20):
            size += len(line) + 1
            if header is None:
                header = line.decode()
                continue
            rows += 1
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert header.startswith("id,card_number,full_name,phone") and rows == members and cursor
    report = {"rows": rows, "export_seconds": round(seconds, 1), "export_rows_per_s": round(rows / seconds),
              "test_process_cpu_s": round(cpu, 1), "csv_mib": round(size / 2**20, 1),
              "copy_rows_per_s (export_data.fill_members)": round(members / copy_seconds),
              "rss_before_mib": round(before, 1), "peak_during_export_mib": round(_status_kib("VmHWM") / 1024, 1),
              "load_average_start_end": load, "retried_after_503": retried}
    print(f"\nEXPORT MEMBERS {rows} " + json.dumps(report, indent=1))
