"""Benchmark: importing members from CSV on PostgreSQL (issue 19), beside COPY of the same rows, then the
warehouse's export of the members imported.

    nice -n 19 .venv/bin/python -m pytest tests/perf/test_import_perf.py -m perf -s -p no:randomly -k beside_copy
    # sizes: PERF_IMPORT_ROWS=10000,50000 (default 10000); the issue's figure is 100000,1000000

For each size: a CSV of distinct members (Chinese headers), members and interfaces each as a ``nameko run``
process of its own (as deployed), each on a fresh PostgreSQL database; the dry run and the commit are
timed through the service (rows/s), with the CPU each phase cost the interfaces process, the members process and
this one beside it (the wall time follows the machine's load, the CPU hardly), and the interfaces process's peak
memory is read from the kernel (``VmHWM``, reset before each phase) after each phase; memory must stay flat across
sizes (the file is streamed, a batch at a time). In the same run, two references: PostgreSQL's ``COPY`` of the same
CSV rows into a plain table (the issue's physical limit), and ``COPY`` of the very rows the commit wrote into
members' own tables, with every index and constraint they have (``copy_into_register_seconds``: what PostgreSQL
itself needs to put those rows where an import must put them). Then every member is exported as the gateway's ``GET /v1/exports/members`` writes
it (``gateway.routes.exports``: one ``export_members`` RPC per 2,000 rows, CSV into a spooled file), timed,
with members' peak memory over the export: flat across sizes too.

The consumers of the enrolments (points, records, notifications; on fresh databases, in this process, the
notifications' timers off) run too, and "applied" is the time from the commit's start until each has applied every
imported member (``APPLIED``: an account, a patient's enrolment, a welcome run a member; polled, bounded): what
an import costs the suite, not only members (issue 19, branch ``batchenrol``: one ``members_imported`` a batch).

Also here: the issue's kill test at 100,000 rows (an import killed half-way resumes and ends with exactly
100,000 members), which the default run does at 5,000 (tests/integration/test_import_resume.py).
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import eventlet
import psycopg2
import pytest

from gateway.routes.exports import MEMBER_COLUMNS, PAGE, SPOOL_IN_MEMORY, _member_row, _write_pages
from services.kit.caller import Identity
from services.notifications.service import NotificationsService
from services.points.service import PointsService
from services.records.service import RecordsService
from tests import import_samples
from tests.harness import scalar, scratch_database
from tests.integration.test_import_resume import interfaces_process, killed_half_way_then_resumed  # noqa: F401
from tests.integration.test_imports import settled, upload

ADMIN = Identity(kind="staff", subject="admin", role="group_admin", branches=("*",))
SIZES = [int(size) for size in os.environ.get("PERF_IMPORT_ROWS", "10000").split(",")]


def peak_kib(pid: int | str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int | str) -> float:
    """The process's CPU time so far (user + system, ``/proc/<pid>/stat``): what a phase cost it, whatever the load."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_peak(pid: int | str) -> None:
    """Start the process's peak memory (``VmHWM``) again from what it holds now (Linux >= 4.0)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def exported(proxy: object) -> tuple[int, int]:
    """Every member exported as the gateway writes ``GET /v1/exports/members``: (rows, bytes of CSV)."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
    with spool:
        text = io.TextIOWrapper(spool, encoding="utf-8", newline="", write_through=True)
        writer = csv.writer(text)
        writer.writerow(MEMBER_COLUMNS)
        _write_pages(writer, MEMBER_COLUMNS, proxy.members.export_members, _member_row, None)
        text.flush()
        size = spool.tell()
        spool.seek(0)
        rows = sum(1 for _ in csv.reader(io.TextIOWrapper(spool, encoding="utf-8", newline=""))) - 1
    return rows, size


def copy_seconds(path: Path, columns: int = 6) -> float:
    """COPY the CSV's rows (``columns`` of them) into a plain table of text columns in a scratch database: the
    physical limit."""
    with scratch_database("cl_perf_import_copy") as url, contextlib.closing(psycopg2.connect(url)) as connection:
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE TABLE plain ({', '.join(f'c{n} text' for n in range(columns))})")
            started = time.perf_counter()
            with open(path, encoding="utf-8") as handle:
                cursor.copy_expert("COPY plain FROM STDIN WITH (FORMAT csv, HEADER true)", handle)
            connection.commit()
            return time.perf_counter() - started


REGISTER_TABLES = ("members", "member_name_tokens")
"""What members' commit fills with an import's rows: the register and the blind-indexed words of each name."""


def copy_into_register_seconds(members_url: str, tmp_path: Path) -> tuple[float, int]:
    """COPY the very rows the commit wrote (``REGISTER_TABLES``, read back from members' database) into the same tables
    — their schema dumped by ``pg_dump``, with every index, key and constraint — in a scratch database: the least
    PostgreSQL itself needs to put these rows where the import must put them (the commit's check, encryption and
    events left out). (seconds, rows copied)."""
    members_url = members_url.replace("postgresql+psycopg2://", "postgresql://")
    dumped = tmp_path / "register.sql"
    subprocess.run(["pg_dump", "--schema-only", "--no-owner", "--no-privileges",
                    *(f"--table={table}" for table in REGISTER_TABLES), "--file", str(dumped), members_url], check=True)
    with scratch_database("cl_perf_import_register") as url:
        subprocess.run(["psql", "--quiet", "--no-psqlrc", "--set", "ON_ERROR_STOP=1", "--file", str(dumped), url],
                       check=True, stdout=subprocess.DEVNULL)
        files = {table: tmp_path / f"{table}.copy" for table in REGISTER_TABLES}
        with contextlib.closing(psycopg2.connect(members_url)) as source, source.cursor() as cursor:
            for table, file in files.items():  # read back first, untimed, in PostgreSQL's binary form
                with open(file, "wb") as handle:
                    cursor.copy_expert(f"COPY {table} TO STDOUT WITH (FORMAT binary)", handle)
        with contextlib.closing(psycopg2.connect(url)) as target, target.cursor() as cursor:
            copied = 0
            started = time.perf_counter()
            for table, file in files.items():
                with open(file, "rb") as handle:
                    cursor.copy_expert(f"COPY {table} FROM STDIN WITH (FORMAT binary)", handle)
                copied += cursor.rowcount
            target.commit()
            return time.perf_counter() - started, copied


APPLIED = {"points": "SELECT count(*) FROM points_accounts",
           "records": "SELECT count(*) FROM patients WHERE enrolled_at IS NOT NULL",
           "notifications": "SELECT count(*) FROM journey_runs"}
"""How many enrolments each consumer has applied: an account, a patient's enrolment, a welcome run a member."""


def _cpu(*processes: Any) -> tuple[float, ...]:
    """The CPU seconds so far of each process given, then of this one."""
    return (*(cpu_seconds(process.pid) for process in processes), cpu_seconds("self"))


def _spent(before: tuple[float, ...], after: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(end - start for start, end in zip(before, after, strict=True))


def drained(consumers: dict[str, Any], rows: int, started: float, timeout: float) -> dict[str, float]:
    """Wait (bounded) until every consumer has applied all ``rows`` enrolments; when each had, from ``started``."""
    done: dict[str, float] = {}
    deadline = time.perf_counter() + timeout
    while len(done) < len(consumers):
        for name, container in consumers.items():
            if name not in done and scalar(container.database_url, APPLIED[name]) >= rows:
                done[name] = time.perf_counter() - started
        if time.perf_counter() > deadline:
            raise AssertionError(f"the consumers did not apply {rows} enrolments in {timeout} s: {done}")
        eventlet.sleep(0.2)
    return done


@pytest.mark.perf
@pytest.mark.timeout(7200)
@pytest.mark.backends("postgresql")
@pytest.mark.parametrize("rows", SIZES)
def test_import_members_from_csv_beside_copy(rows, start_service, rpc, backend, databases,
                                             interfaces_process, tmp_path):  # noqa: F811
    members_url = databases.fresh("postgresql", "members")
    members = interfaces_process(members_url, service="members", EXPORT_SAFETY_LAG_SECONDS="0")
    # the consumers of the enrolments, in this process (their timers off: a welcome is queued, not sent)
    consumers = {"points": start_service(PointsService, "postgresql"),
                 "records": start_service(RecordsService, "postgresql"),
                 "notifications": start_service(NotificationsService, "postgresql", NOTIFICATIONS={"scheduler": False})}
    process = interfaces_process(databases.fresh("postgresql", "interfaces"))
    proxy = rpc(caller=ADMIN, timeout=120)
    path = import_samples.write_csv(tmp_path / "members.csv", import_samples.members(rows))
    size_mib = path.stat().st_size / 2**20

    started = time.perf_counter()
    job = upload(proxy, path)
    uploaded = time.perf_counter() - started
    reset_peak(process.pid)
    started, cpu_before = time.perf_counter(), _cpu(process, members)
    proxy.interfaces.start_import_check(job["id"])
    job = settled(proxy, job["id"], "validated", timeout=7000)
    checked = time.perf_counter() - started
    check_cpu = _spent(cpu_before, _cpu(process, members))
    check_peak = peak_kib(process.pid)
    assert job["counts"]["valid"] == rows

    reset_peak(process.pid)
    started, cpu_before = time.perf_counter(), _cpu(process, members)
    proxy.interfaces.commit_import(job["id"], idempotency_key=f"perf-{job['id']}")
    job = settled(proxy, job["id"], "done", timeout=7000)
    committed = time.perf_counter() - started
    commit_cpu = _spent(cpu_before, _cpu(process, members))
    commit_peak = peak_kib(process.pid)
    assert job["counts"]["imported"] == rows
    applied = drained(consumers, rows, started, timeout=7000)
    drain = max(applied.values())
    drain_cpu = _spent(cpu_before, _cpu(process, members))

    reset_peak(members.pid)
    before = peak_kib(members.pid)
    started = time.perf_counter()
    exported_rows, exported_bytes = exported(proxy)
    export_seconds = time.perf_counter() - started
    export_peak = peak_kib(members.pid)
    assert exported_rows == rows

    copied = copy_seconds(path)
    registered, register_rows = copy_into_register_seconds(members_url, tmp_path)
    print(f"\nimport of {rows:,} members ({size_mib:.1f} MiB CSV), PostgreSQL, load {os.getloadavg()[0]:.1f}")
    print(f"  upload   {uploaded:8.1f} s")
    print(f"  dry run  {checked:8.1f} s  {rows / checked:9,.0f} rows/s  interfaces peak {check_peak / 1024:6.1f} MiB")
    print(f"  commit   {committed:8.1f} s  {rows / committed:9,.0f} rows/s  interfaces peak {commit_peak / 1024:6.1f} MiB")
    print(f"  applied  {drain:8.1f} s  {rows / drain:9,.0f} rows/s  from the commit's start until every consumer "
          f"applied every member ({', '.join(f'{name} {at:.1f} s' for name, at in applied.items())})")
    print(f"  COPY     {copied:8.2f} s  {rows / copied:9,.0f} rows/s  (plain table, the physical limit)")
    print(f"  COPY     {registered:8.2f} s  {rows / registered:9,.0f} rows/s  (the commit's own rows into members' own tables, "
          f"every index and constraint: {register_rows:,} rows of {', '.join(REGISTER_TABLES)})")
    print(f"  commit / COPY: {committed / copied:.0f}x the plain table, {committed / registered:.1f}x members' tables; "
          f"applied / COPY: {drain / copied:.0f}x, {drain / registered:.1f}x; COPY into members' tables / plain: "
          f"{registered / copied:.0f}x")
    for phase, (interfaces_cpu, members_cpu, here_cpu) in (("dry run", check_cpu), ("commit", commit_cpu),
                                                           ("applied", drain_cpu)):
        print(f"  {phase:8} CPU a row: interfaces {interfaces_cpu * 1e6 / rows:5,.0f} us, members {members_cpu * 1e6 / rows:5,.0f} us, "
              f"this process (points, records, notifications, and the polling) {here_cpu * 1e6 / rows:5,.0f} us")
    print(f"  export   {export_seconds:8.1f} s  {rows / export_seconds:9,.0f} rows/s  {exported_bytes / 2**20:.1f} MiB CSV, "
          f"members' peak {export_peak / 1024:6.1f} MiB (from {before / 1024:.1f}), pages of {PAGE}")


@pytest.mark.perf
@pytest.mark.timeout(7200)
@pytest.mark.backends("postgresql")
def test_an_import_of_100000_killed_half_way_resumes_and_imports_each_row_once(
        start_service, rpc, backend, databases, interfaces_process, tmp_path):  # noqa: F811
    killed_half_way_then_resumed(100_000, 500, start_service, rpc, databases, interfaces_process, tmp_path, 7000)
