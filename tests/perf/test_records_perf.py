"""Records benchmarks (issue 6), on PostgreSQL; run explicitly:

    .venv/bin/python -m pytest tests/perf/test_records_perf.py -s -p no:randomly -m perf

1. KPIs over 1,000,000 visits (and 150,000 feedback answers) loaded with COPY: one branch-month and
   the whole group-year through the ``records.kpis`` RPC, beside a ceiling measured in the same run
   (one plain aggregate pass over the same rows), with the indexes and the query plans printed.
2. A member's full record (profile, chart, care plan and 200 visits) read through the gateway over
   HTTP: p50/p95/p99, serial and 10 at a time, beside ``/health`` (HTTP, no RPC) and a member read
   (HTTP + one small RPC) measured in the same run.

The figures go to the terminal; tests/perf/RESULTS.md keeps them with the command.
"""

from __future__ import annotations

import io
import random
import statistics
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import eventlet
import pytest
import requests
from sqlalchemy import text

from gateway.auth import issue_api_key
from gateway.service import GatewayService
from services.kit.caller import Identity
from services.members.service import MembersService
from services.records import figures
from services.records.service import RecordsService
from tests.e2e.conftest import free_port
from tests.harness import store_for

pytestmark = [pytest.mark.perf, pytest.mark.timeout(3600)]

VISITS = 1_000_000
PATIENTS = 300_000
FEEDBACK = 150_000
YEAR = 2025
BRANCHES = (("SH01", 0.5), ("SH02", 0.3), ("HZ01", 0.2))
ADMIN = Identity(kind="staff", subject="perf-admin", role="group_admin", branches=("*",))


class CsvStream(io.RawIOBase):
    """A file-like view of CSV lines made on demand, for ``COPY ... FROM STDIN`` without the whole set in memory."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            try:
                self._buffer += next(self._lines).encode()
            except StopIteration:
                break
        if size < 0:
            size = len(self._buffer)
        chunk, self._buffer = self._buffer[:size], self._buffer[size:]
        return chunk


def _branch(rng: random.Random) -> str:
    roll, total = rng.random(), 0.0
    for code, share in BRANCHES:
        total += share
        if roll < total:
            return code
    return BRANCHES[-1][0]


def patient_lines(members: list[uuid.UUID], rng: random.Random) -> Iterator[str]:
    for member in members:
        yield f"{member},{_branch(rng)},0,0,2024-12-01 00:00:00+00\n"


def visit_lines(members: list[uuid.UUID], rng: random.Random) -> Iterator[str]:
    kinds = ("first",) * 25 + ("return",) * 65 + ("emergency",) * 5 + ("free_clinic",) * 3 + ("event",) * 2
    start = datetime(YEAR, 1, 1, tzinfo=UTC)
    for number in range(VISITS):
        at = start + timedelta(seconds=rng.randrange(365 * 86400))
        day = (at + timedelta(hours=8)).date()  # Asia/Shanghai
        kind = rng.choice(kinds)
        roll = rng.random()
        status = "completed" if roll < 0.88 else "cancelled" if roll < 0.94 else "no_show"
        total = 0 if kind in ("free_clinic", "event") else rng.randrange(5_000, 200_000, 100)
        refunded = total // 2 if status == "completed" and rng.random() < 0.03 else 0
        treatment = rng.choice(("none", "ongoing", "finished", "finished")) if status == "completed" else ""
        referral = f"staff:{rng.randrange(50)}" if kind == "first" and rng.random() < 0.2 else ""
        done = status == "completed"
        stamp = at.isoformat()
        yield (f"{uuid.UUID(int=rng.getrandbits(128), version=4)},{rng.choice(members)},{_branch(rng)},"
               f"dr-{rng.randrange(40)},{kind},{status},{f'P-{number}' if done else ''},CNY,{total},{total},"
               f"{refunded},{refunded},{treatment},f,f,f,{referral},{stamp},"
               f"{stamp if done else ''},{day if done else ''},{stamp if done else ''},{day if done else ''},"
               f"{'' if done else stamp},{stamp},{stamp}\n")


def feedback_lines(members: list[uuid.UUID], rng: random.Random) -> Iterator[str]:
    start = datetime(YEAR, 1, 1, tzinfo=UTC)
    levels = ("very_dissatisfied", "dissatisfied", "neutral", "satisfied", "very_satisfied")
    for _ in range(FEEDBACK):
        at = start + timedelta(seconds=rng.randrange(365 * 86400))
        day = (at + timedelta(hours=8)).date()
        if rng.random() < 0.97:
            score = rng.choices(range(1, 6), weights=(2, 3, 10, 35, 50))[0]
            yield (f"{uuid.uuid4()},{rng.choice(members)},{_branch(rng)},survey,app,{levels[score - 1]},{score},"
                   f"{rng.randrange(11)},f,closed,{at.isoformat()},{day},,\n")
        else:
            urgent = rng.random() < 0.2
            seconds = rng.randrange(60, 3600) if urgent else rng.randrange(600, 86400)
            yield (f"{uuid.uuid4()},{rng.choice(members)},{_branch(rng)},complaint,phone,,,,"
                   f"{'t' if urgent else 'f'},responded,{at.isoformat()},{day},"
                   f"{(at + timedelta(seconds=seconds)).isoformat()},{seconds}\n")


def copy(connection, table: str, columns: str, lines: Iterator[str]) -> None:
    with connection.cursor() as cursor:
        cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv)", CsvStream(lines), size=1 << 16)


def load_visits(url: str) -> dict[str, float]:
    """1,000,000 visits, their patients and a year of feedback, by COPY; seconds per table."""
    import psycopg2
    import psycopg2.extensions

    rng = random.Random(2025)
    members = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(PATIENTS)]
    # COPY needs a blocking connection: lift the green wait callback while loading (nothing else runs yet)
    green = psycopg2.extensions.get_wait_callback()
    psycopg2.extensions.set_wait_callback(None)
    connection = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
    timings = {}
    try:
        for table, columns, lines in (
            ("patients", "member_id, home_branch, completed_visits, paid_visits, created_at",
             patient_lines(members, rng)),
            ("visits", "id, member_id, branch, doctor_id, kind, status, bill_id, currency, total_minor, "
                       "qualifying_minor, refunded_minor, refunded_qualifying_minor, treatment, outpatient_surgery, "
                       "first_visit, first_paid_visit, referral_source, visit_at, arrived_at, arrived_on, "
                       "completed_at, completed_on, ended_at, created_at, updated_at", visit_lines(members, rng)),
            ("feedback", "id, member_id, branch, kind, channel, satisfaction, score, nps, urgent, status, "
                         "submitted_at, submitted_on, first_response_at, response_seconds",
             feedback_lines(members, rng)),
        ):
            started = time.perf_counter()
            copy(connection, table, columns, lines)
            connection.commit()
            timings[table] = time.perf_counter() - started
        connection.autocommit = True
        with connection.cursor() as cursor:
            started = time.perf_counter()
            cursor.execute("VACUUM ANALYZE patients, visits, feedback")
            timings["vacuum analyze"] = time.perf_counter() - started
    finally:
        connection.close()
        psycopg2.extensions.set_wait_callback(green)
    return timings


def timed(call, runs: int) -> list[float]:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return seconds


def describe(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    return (f"median {statistics.median(ordered) * 1000:.0f} ms, min {ordered[0] * 1000:.0f} ms, "
            f"max {ordered[-1] * 1000:.0f} ms ({len(ordered)} runs)")


def test_kpis_over_a_million_visits(start_service, databases, rpc):
    url = databases.fresh("postgresql", "records")
    loaded = load_visits(url)
    print(f"\nloaded with COPY: {', '.join(f'{table} {s:.1f} s' for table, s in loaded.items())}")
    start_service(RecordsService, database_url=url)
    proxy = rpc(caller=ADMIN, timeout=300)
    store = store_for(url)
    cases = {"one branch-month (SH01, 2025-06)": {"period": "month", "on": "2025-06-15", "branch": "SH01"},
             "whole group-year (3 branches, 2025)": {"period": "year", "on": "2025-06-15"}}
    baselines = {"one branch-month (SH01, 2025-06)": (("SH01",), date(2025, 6, 1), date(2025, 6, 30)),
                 "whole group-year (3 branches, 2025)": (("SH01", "SH02", "HZ01"), date(2025, 1, 1),
                                                         date(2025, 12, 31))}
    with store.engine.connect() as connection:
        counted = connection.execute(text("SELECT count(*) FROM visits")).scalar_one()
        indexes = connection.execute(text(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('visits', 'feedback') ORDER BY 1")).all()
    assert counted == VISITS
    print("indexes:\n" + "\n".join(f"  {row[1]}" for row in indexes))
    for name, query in cases.items():
        report = proxy.records.kpis(query)  # warm the cache once
        kpi_times = timed(lambda q=query: proxy.records.kpis(q), 5)
        branches, start, end = baselines[name]

        def one_pass(b=branches, s=start, e=end) -> None:
            with store.engine.connect() as connection:
                connection.execute(text("SELECT count(*), sum(total_minor) FROM visits WHERE branch = ANY(:b) AND "
                                        "completed_on BETWEEN :s AND :e"), {"b": list(b), "s": s, "e": e}).one()

        one_pass()
        ceiling = timed(one_pass, 5)
        total = report["total"]["figures"] if report["total"] else report["branches"][0]["figures"]
        print(f"\nKPIs, {name}: {describe(kpi_times)} through the RPC; "
              f"ceiling (one plain aggregate over the same completed visits): {describe(ceiling)}; "
              f"{total['completed_visits']} completed visits, {total['first_visit_arrivals']} first-visit arrivals")
        with store.transaction() as session:
            print(figures.plans(session, branches, start, end, 1800))
        assert total["completed_visits"] > 0
    store.dispose()


def percentiles(seconds: list[float]) -> str:
    ordered = sorted(seconds)

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))] * 1000

    return f"p50 {at(0.5):.1f} ms, p95 {at(0.95):.1f} ms, p99 {at(0.99):.1f} ms, max {ordered[-1] * 1000:.1f} ms"


def test_a_full_record_with_200_visits_through_the_gateway(start_service, rpc):
    start_service(MembersService, "postgresql")
    start_service(RecordsService, "postgresql")
    port = free_port()
    gateway = start_service(GatewayService, WEB_SERVER_ADDRESS=f"127.0.0.1:{port}", RPC_TIMEOUT=30,
                            AUTH_CACHE_SECONDS=300, max_workers=20)
    gateway_store = store_for(gateway.database_url)
    key = issue_api_key(gateway_store, "perf clinician", "clinician", ("SH01",)).key
    his = rpc(caller=Identity(kind="system", subject="key:perf-his", role="integration", branches=("*",)),
              timeout=60).records
    member = rpc().members.enrol({"full_name": "Perf Patient", "phone": "13700137000", "birth_date": "1980-02-02",
                                  "home_branch": "SH01"})
    member_id = member["id"]
    start = datetime.now(UTC) - timedelta(days=730)
    for number in range(200):
        his.complete_visit({"bill_id": f"PERF-{number}", "member_id": member_id, "branch": "SH01",
                            "doctor_id": "dr-perf", "currency": "CNY",
                            "completed_at": (start + timedelta(days=3 * number)).isoformat(),
                            "items": [{"category": "exam", "code": "EX01", "amount_minor": 10000},
                                      {"category": "treatment", "code": "TR02", "amount_minor": 25000}],
                            "payments": [{"method": "card", "amount_minor": 30000},
                                         {"method": "points", "amount_minor": 5000}]})
    clinician = rpc(caller=Identity(kind="staff", subject="perf-doc", role="clinician", branches=("SH01",))).records
    clinician.update_health_profile(member_id, {"allergies": [{"substance": "Latex", "severity": "mild"}],
                                                "notes": "Benchmark patient"}, "benchmark")
    clinician.update_chart(member_id, {"marks": [{"tooth": t, "finding": "filled", "surfaces": ["M"]}
                                                 for t in (16, 26, 36, 46)]}, "benchmark")
    session = requests.Session()
    headers = {"Authorization": f"Bearer {key}", "X-Access-Reason": "benchmark"}
    base = f"http://127.0.0.1:{port}"
    body = session.get(f"{base}/v1/members/{member_id}/record", headers=headers, timeout=30).json()
    assert len(body["visits"]["items"]) == 200, body
    size = len(session.get(f"{base}/v1/members/{member_id}/record", headers=headers, timeout=30).content)

    def get(path: str, http: requests.Session) -> float:
        started = time.perf_counter()
        response = http.get(base + path, headers=headers, timeout=30)
        elapsed = time.perf_counter() - started
        assert response.status_code == 200, response.text
        return elapsed

    record_path = f"/v1/members/{member_id}/record"
    for _ in range(20):
        get(record_path, session)
    serial = [get(record_path, session) for _ in range(300)]
    health = [get("/health", session) for _ in range(300)]
    member_read = [get(f"/v1/members/{member_id}", session) for _ in range(300)]
    sessions = [requests.Session() for _ in range(10)]
    pool = eventlet.GreenPool(10)
    started = time.perf_counter()
    concurrent = list(pool.imap(lambda n: get(record_path, sessions[n % 10]), range(300)))
    wall = time.perf_counter() - started
    print(f"\nfull record (200 visits, {size / 1024:.0f} KiB JSON), serial: {percentiles(serial)}")
    print(f"full record, 10 at a time: {percentiles(concurrent)} ({300 / wall:.0f} records/s)")
    print(f"ceiling: GET /health (HTTP only): {percentiles(health)}")
    print(f"ceiling: GET /v1/members/<id> (HTTP + one small RPC): {percentiles(member_read)}")
    gateway_store.dispose()
