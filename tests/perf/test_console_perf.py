"""Member 360 in the console: the server's answer and the first paint in headless Chromium, p50/p95.

The members database is seeded with ``PERF_CONSOLE_MEMBERS`` members (default 100,000; COPY, as the
members nightly benchmark seeds it); the member shown is enrolled through the API into it, so points,
records and notifications know them (their databases hold only that member's rows). The floor beside the
figures: ``GET /health`` through the same gateway (no RPC), measured in the same run.

    .venv/bin/python -m pytest tests/perf/test_console_perf.py -s -p no:randomly --backends postgresql
"""

from __future__ import annotations

import os
import statistics
import time

import pytest
import requests

from tests.e2e.conftest import STRONG_PASSWORD, start_suite  # noqa: F401 (fixture)
from tests.e2e.console.conftest import open_browser  # noqa: F401 (fixture)
from tests.harness import pg_admin
from tests.perf.test_members_nightly import prepare

SIZE = int(os.environ.get("PERF_CONSOLE_MEMBERS", "100000"))
LOADS = int(os.environ.get("PERF_CONSOLE_LOADS", "60"))
# the first contentful paint from the browser's paint timing (observed, buffered: it may be reported a
# moment after the load event), and the navigation's own request-to-last-byte time
FIRST_PAINT = """new Promise(resolve => {
  const n = performance.getEntriesByType('navigation')[0];
  const done = paint => resolve({paint: paint, answer: n.responseEnd - n.requestStart});
  new PerformanceObserver(list => {
    const p = list.getEntries().find(e => e.name === 'first-contentful-paint');
    if (p) { done(p.startTime); }
  }).observe({type: 'paint', buffered: true});
  setTimeout(() => done(null), 3000);
})"""


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[max(0, int(round(0.95 * len(ordered))) - 1)]
    return f"p50 {statistics.median(ordered):6.1f} ms  p95 {p95:6.1f} ms  (n={len(ordered)})"


@pytest.fixture
def seeded_members():
    """The members database with ``SIZE`` members, dropped after the services using it have stopped."""
    url, written = prepare(SIZE)
    yield url, written
    pg_admin(f'DROP DATABASE IF EXISTS "cl_perf_members_{SIZE}" WITH (FORCE)')


@pytest.mark.perf
@pytest.mark.timeout(3600)
def test_member_360_server_answer_and_first_paint(seeded_members, start_suite, open_browser):  # noqa: F811
    url, written = seeded_members
    suite = start_suite(members_database_url=url)
    print(f"\nmembers database: {SIZE:,} members seeded with COPY in {written['seconds']} s")
    member = suite.call("POST", "/v1/members", role="front_desk", branches=("SH01",), json={
        "full_name": "Perf Patient", "phone": "13912345678", "birth_date": "1980-01-01", "home_branch": "SH01",
        "consents": {"sms": True}}, headers={"Idempotency-Key": "perf-console"}).json()
    user = suite.create_staff("front_desk", ("SH01",))
    browser = open_browser(suite.base_url)
    browser.sign_in(user["username"], STRONG_PASSWORD)
    path = f"/console/members/{member['id']}"
    assert browser.goto(path) == 200

    http = requests.Session()
    for cookie in browser.send(op="cookies"):
        http.cookies.set(cookie["name"], cookie["value"], path=cookie["path"])
    floor, server = [], []
    for _ in range(LOADS):
        started = time.perf_counter()
        assert http.get(suite.base_url + "/health", timeout=10).status_code == 200
        floor.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        answer = http.get(suite.base_url + path, timeout=10)
        server.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200 and "points-balance" in answer.text
    paints, answers = [], []
    for _ in range(LOADS):
        assert browser.goto(path) == 200
        measured = browser.page("evaluate", FIRST_PAINT)
        paints.append(measured["paint"])
        answers.append(measured["answer"])
    print(f"floor  GET /health (no RPC)            {percentiles(floor)}")
    print(f"member 360 server answer (HTTP client) {percentiles(server)}")
    print(f"member 360 answer as Chromium saw it   {percentiles(answers)}")
    assert all(paint is not None for paint in paints), "Chromium reported no first contentful paint"
    print(f"member 360 first contentful paint      {percentiles(paints)}  (from navigation start)")
    print(f"(load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
