"""Benchmark: the members' nightly tier review and segmentation over 100,000 and 1,000,000 members.

    make perf PYTEST_ARGS="tests/perf/test_members_nightly.py"
    # or: .venv/bin/python -m pytest tests/perf/test_members_nightly.py -m perf -s -p no:randomly
    # sizes: PERF_MEMBERS=100000,1000000 (default); PERF_KEEP=1 keeps the databases

For each size: a fresh PostgreSQL database migrated like production, a synthetic membership written with
COPY, ANALYZE; then a process of its own runs two nights of the production jobs and prints time and
peak memory per phase, beside the floor (plain full scans of the same tables in the same run). Memory
must stay flat from the smallest size to the largest: the jobs work in batches and never load the
membership into Python. The plans of the jobs' queries are printed for the largest size.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import date

import psycopg2
import pytest

from tests.harness import PG_ADMIN_URL, REPO, pg_admin
from tests.perf.members_data import generate

DAY = date(2026, 6, 15)
SIZES = [int(size) for size in os.environ.get("PERF_MEMBERS", "100000,1000000").split(",")]


def prepare(size: int) -> tuple[str, dict]:
    from services.kit.migrate import upgrade

    name = f"cl_perf_members_{size}"
    pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    pg_admin(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    upgrade("members", base.replace("postgresql://", "postgresql+psycopg2://") + "/" + name)
    # COPY does not work under psycopg2's green wait callback (installed by the kit): write without it
    green = psycopg2.extensions.get_wait_callback()
    psycopg2.extensions.set_wait_callback(None)
    connection = psycopg2.connect(f"{base}/{name}")
    started = time.perf_counter()
    try:
        written = generate(connection, size, DAY)
        connection.commit()
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    finally:
        connection.close()
        psycopg2.extensions.set_wait_callback(green)
    written["seconds"] = round(time.perf_counter() - started, 1)
    return base.replace("postgresql://", "postgresql+psycopg2://") + "/" + name, written


@pytest.mark.perf
@pytest.mark.timeout(4 * 3600)
def test_nightly_review_and_segmentation_memory_stays_flat():
    results = {}
    for size in SIZES:
        url, written = prepare(size)
        explain = ["--explain"] if size == max(SIZES) else []
        run = subprocess.run([sys.executable, "-m", "tests.perf.members_night", url, DAY.isoformat(), *explain],
                             cwd=REPO, capture_output=True, text=True, timeout=3 * 3600,
                             env={**os.environ, "PYTHONWARNINGS": "ignore"})
        assert run.returncode == 0, run.stderr[-4000:]
        report = json.loads(run.stdout.strip().splitlines()[-1])
        results[size] = report
        print(f"\n=== {size:,} members; data written with COPY in {written.pop('seconds')} s: {written}")
        print(f"floor: full scans of member_visits and members: {report['floor_full_scans_seconds']} s")
        for item in report["phases"]:
            jobs = item["result"] if isinstance(item["result"], dict) else {}
            detail = {job: (v["processed"], v["seconds"]) for job, v in jobs.items() if isinstance(v, dict)
                      and "processed" in v} or jobs
            print(f"{item['phase']:<42} {item['seconds']:>8} s  peak RSS {item['peak_rss_mb']:>7} MB "
                  f"(before {item['rss_before_mb']} MB)  {detail}")
        print(f"segments: {report['segments']}  outbox: {report['outbox']}")
        if report["plans"]:
            for statement, plan in report["plans"].items():
                print(f"\n--- {statement[:400]}\n{plan}")
        if not os.environ.get("PERF_KEEP"):
            pg_admin(f'DROP DATABASE IF EXISTS "cl_perf_members_{size}" WITH (FORCE)')

    small, large = results[min(SIZES)], results[max(SIZES)]
    for index in (0, 1):
        grew = large["phases"][index]["peak_rss_mb"] - small["phases"][index]["peak_rss_mb"]
        print(f"{large['phases'][index]['phase']}: peak RSS grew {grew:.1f} MB from {min(SIZES):,} to {max(SIZES):,}")
        assert grew < 32, "the nightly jobs' memory grows with the membership: something loads it whole"
