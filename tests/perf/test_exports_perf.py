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
import io
import itertools
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import pytest

from gateway.routes.exports import MEMBER_COLUMNS, SPOOL_IN_MEMORY, _member_row, _write_pages
from services.kit.caller import Identity
from services.members.service import MembersService
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
def test_members_export_streams_in_flat_memory(start_service, rpc, members):
    """Every member exported as ``GET /v1/exports/members`` writes it (``gateway.routes.exports._write_pages``: one
    ``members.export_members`` RPC per page, CSV into a file spooled to disk past 8 MiB) as the warehouse's key;
    members runs in this process, whose peak memory (``VmHWM``, reset just before the export) must not follow the
    count. (Through HTTP the gateway's own database refused it twice under today's load: 503.)"""
    service = start_service(MembersService, "postgresql", EXPORT_SAFETY_LAG_SECONDS=0, NIGHTLY_AT="off")
    url = service.database_url.replace("postgresql+psycopg2://", "postgresql://")
    started = time.perf_counter()
    fill_members(url, members)
    copy_seconds = time.perf_counter() - started
    proxy = rpc(caller=Identity(kind="system", subject="warehouse", role="integration", branches=("*",)),
                timeout=600)
    Path("/proc/self/clear_refs").write_text("5")  # the peak starts again from what the process holds now
    before = _status_kib("VmRSS") / 1024
    load = [os.getloadavg()[0]]
    started, cpu = time.perf_counter(), time.process_time()
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
        text = io.TextIOWrapper(spool, encoding="utf-8", newline="", write_through=True)
        writer = csv.writer(text)
        writer.writerow(MEMBER_COLUMNS)
        cursor = _write_pages(writer, MEMBER_COLUMNS, proxy.members.export_members, _member_row, None)
        text.flush()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        load.append(os.getloadavg()[0])
        size = spool.tell()
        spool.seek(0)
        reader = csv.reader(io.TextIOWrapper(spool, encoding="utf-8", newline=""))
        header = next(reader)
        rows = sum(1 for _ in reader)
    assert header[:4] == ["id", "card_number", "full_name", "phone"] and rows == members and cursor
    report = {"rows": rows, "export_seconds": round(seconds, 1), "export_rows_per_s": round(rows / seconds),
              "test_process_cpu_s": round(cpu, 1), "csv_mib": round(size / 2**20, 1),
              "copy_rows_per_s (export_data.fill_members)": round(members / copy_seconds),
              "rss_before_mib": round(before, 1), "peak_during_export_mib": round(_status_kib("VmHWM") / 1024, 1),
              "load_average_start_end": load}
    print(f"\nEXPORT MEMBERS {rows} " + json.dumps(report, indent=1))


@pytest.mark.timeout(7200)
@pytest.mark.parametrize("members", MEMBER_SIZES)
def test_members_export_through_http_streams_in_flat_memory(start_suite, members):  # noqa: F811
    """The same export as the warehouse's nightly job asks for it: ``GET /v1/exports/members`` with the integration
    key, through the gateway's HTTP server; every service and the gateway run in this process, whose peak memory
    (``VmHWM``, reset just before) must not follow the count. The answer is read as a stream and its CSV rows
    counted exactly (the header apart)."""
    suite = start_suite(members_config={"EXPORT_SAFETY_LAG_SECONDS": 0})
    started = time.perf_counter()
    fill_members(suite.database_urls["members"], members)
    copy_seconds = time.perf_counter() - started
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS") / 1024
    load = [os.getloadavg()[0]]
    started, cpu = time.perf_counter(), time.process_time()
    with suite.http.get(suite.base_url + "/v1/exports/members", stream=True, timeout=7000,
                        headers={"Authorization": f"Bearer {suite.key('integration')}"}) as answer:
        assert answer.status_code == 200, answer.text
        cursor = answer.headers["X-Export-Cursor"]
        answer.raw.decode_content, answer.raw.auto_close = True, False  # read to its end as a file
        reader = csv.reader(io.TextIOWrapper(answer.raw, encoding="utf-8", newline=""))
        header = next(reader)
        rows = sum(1 for _ in reader)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    load.append(os.getloadavg()[0])
    assert header[:4] == ["id", "card_number", "full_name", "phone"] and rows == members and cursor
    report = {"rows": rows, "export_seconds": round(seconds, 1), "export_rows_per_s": round(rows / seconds),
              "test_process_cpu_s": round(cpu, 1), "copy_rows_per_s (export_data.fill_members)":
              round(members / copy_seconds), "rss_before_mib": round(before, 1),
              "peak_during_export_mib": round(_status_kib("VmHWM") / 1024, 1), "load_average_start_end": load}
    print(f"\nEXPORT MEMBERS THROUGH HTTP {rows} " + json.dumps(report, indent=1))
