"""Benchmark: the programme preview (``members.preview_programme``) over 100,000 members, before and after the
kept 12-month sums (issue 21).

    .venv/bin/python -m pytest tests/perf/test_programme_preview_perf.py -k preview_of -m perf -s -p no:randomly
    # sizes: PERF_PREVIEW_MEMBERS (default 100000; e.g. 100000,1000000); rounds: PERF_PREVIEW_ROUNDS (5)

The members database is seeded with COPY as the members nightly benchmark seeds it (members with their
visits, points and top-ups), then the kept sums are written by the one-off rebuild the first night after the
release runs (timed). In the same run, round by round: the floor (plain full scans of the four tables the old
statement read: what any answer summing every member's 12 months must at least do), the statement before
(``tests/integration/preview_before.py``: every member's activity rows grouped at once), the preview after
(``standings.preview``: one narrow row per member), and the preview after on the next day before the night
has refreshed the window's edge (those members' rows summed live). The answers must be the same.
"""

from __future__ import annotations

import copy
import os
import statistics
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, event, func, not_, select, text
from sqlalchemy.orm import Session

from services.kit.clock import utcnow
from services.kit.jobs import run_batches
from services.members import programme_versions, standings, windows
from services.members.models import MemberWindow
from services.members.rules import tiers
from services.members.rules.programme import DEFAULT_PROGRAMME, programme_document
from tests.harness import pg_admin, store_for
from tests.integration import preview_before
from tests.perf.test_members_nightly import DAY, prepare

SIZES = [int(size) for size in os.environ.get("PERF_PREVIEW_MEMBERS", "100000").split(",")]
ROUNDS = int(os.environ.get("PERF_PREVIEW_ROUNDS", "5"))


def timed(run) -> tuple[float, object]:
    started = time.perf_counter()
    answer = run()
    return (time.perf_counter() - started) * 1000, answer


def rebuild(url: str) -> tuple[float, int]:
    """The one-off rebuild of every member's row, as the first night runs it (batches of 1,000): seconds, rows."""
    store = store_for(url)
    try:
        started = time.perf_counter()
        outcome = run_batches(store, *windows.REBUILD, _rebuild_step)
        assert outcome.finished
        with store.transaction() as session:
            rows = session.execute(text("SELECT count(*) FROM member_windows")).scalar()
        return time.perf_counter() - started, rows
    finally:
        store.dispose()


def _rebuild_step(session: Session, cursor: str | None) -> tuple[str | None, int]:
    after, count = windows.rebuild_batch(session, DAY, uuid.UUID(cursor) if cursor else None, 1000, utcnow())
    return (str(after) if after else None), count


@pytest.mark.perf
@pytest.mark.timeout(4 * 3600)
def test_the_preview_of_100k_members_before_and_after_the_kept_sums():
    for size in SIZES:
        measure(size)


def measure(size: int) -> None:
    engine = None
    try:
        url, written = prepare(size)
        engine = create_engine(url)
        seconds, rows = rebuild(url)
        document = copy.deepcopy(programme_document(DEFAULT_PROGRAMME))
        document["tiers"][1]["thresholds"]["spend_minor"] = 100_000
        proposed = programme_versions.parse(document, "CNY")
        scans = [f"SELECT count(*), sum(length(member_id::text)) FROM {table}"
                 for table in ("member_visits", "member_points", "member_top_ups")]
        figures: dict[str, list[float]] = {"floor": [], "before": [], "after": [], "next day": []}
        with Session(engine) as session:
            next_first, next_last = tiers.window(DAY + timedelta(days=1))
            stale = session.scalar(select(func.count()).select_from(MemberWindow)
                                   .where(not_(windows.fresh(next_first, next_last))))
            for _ in range(ROUNDS):
                figures["floor"].append(timed(lambda: [session.execute(text(sql)).all() for sql in (
                    "SELECT count(*), count(DISTINCT tier) FROM members", *scans)])[0])
                ms, old = timed(lambda: preview_before.preview(session, DEFAULT_PROGRAMME, proposed, DAY))
                figures["before"].append(ms)
                ms, new = timed(lambda: standings.preview(session, DEFAULT_PROGRAMME, proposed, DAY))
                figures["after"].append(ms)
                assert new == old
                ms, next_day = timed(lambda: standings.preview(session, DEFAULT_PROGRAMME, proposed,
                                                               DAY + timedelta(days=1)))
                figures["next day"].append(ms)
            assert next_day == preview_before.preview(session, DEFAULT_PROGRAMME, proposed, DAY + timedelta(days=1))
            statements: list[tuple[str, object]] = []
            listen = event.listens_for(engine, "before_cursor_execute")
            listen(lambda _c, _k, statement, parameters, *_: statements.append((statement, parameters)))
            standings.preview(session, DEFAULT_PROGRAMME, proposed, DAY)
            statement, parameters = statements[-1]
            plan = "\n".join(row[0] for row in session.connection().exec_driver_sql(
                "EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters))
        print(f"\n=== {size:,} members seeded with COPY in {written['seconds']} s; the one-off rebuild wrote "
              f"{rows:,} rows in {seconds:.1f} s")
        for name, samples in figures.items():
            print(f"{name:<70} p50 {statistics.median(samples):8.1f} ms  max {max(samples):8.1f} ms  (n={ROUNDS})"
                  if name != "next day" else
                  f"{'after, the next day before the night (' + format(stale, ',') + ' rows summed live)':<70} "
                  f"p50 {statistics.median(samples):8.1f} ms  max {max(samples):8.1f} ms  (n={ROUNDS})")
        print(f"answer: {new.members:,} active, {new.up:,} up, {new.down:,} down, "
              f"{new.already_short:,} already short, {new.unchanged:,} unchanged (the same before and after)")
        print(f"(load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)\n--- plan after:\n{plan}")
        assert new.members > 0.9 * size and new.up > 0 and new.down == 0  # cheaper: nobody goes down
    finally:
        if engine is not None:
            engine.dispose()
        pg_admin(f'DROP DATABASE IF EXISTS "cl_perf_members_{size}" WITH (FORCE)')


CALLS = int(os.environ.get("PERF_SUMMARY_CALLS", "200"))


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    return (f"p50 {statistics.median(ordered):6.1f} ms  p95 {ordered[max(0, round(0.95 * len(ordered)) - 1)]:6.1f} ms"
            f"  (n={len(ordered)})")


@pytest.mark.perf
@pytest.mark.timeout(3600)
def test_member_summary_beside_the_three_calls_it_replaces(start_service, rpc):
    """Member 360's members part: ``get_member`` + ``tier`` + ``benefits`` side by side (as the console asked
    before) against one ``member_summary``, interleaved call by call so that the machine's load weighs on
    both alike; the floor is the kit's ``ping`` over the same proxy."""
    import eventlet

    from services.kit.caller import Identity
    from services.members.service import MembersService

    url, _written = prepare(SIZES[0])
    try:
        start_service(MembersService, database_url=url, NIGHTLY_AT="off")
        desk = Identity(kind="staff", subject="perf", role="front_desk", branches=("*",))
        # a standalone proxy is one reader of one socket: one per call made side by side (as the gateway's pool)
        members, *side = (rpc(caller=desk).members for _ in range(3))
        engine = create_engine(url)
        with engine.connect() as connection:
            member_id = str(connection.execute(text("SELECT member_id FROM member_visits LIMIT 1")).scalar())
        engine.dispose()

        def three() -> list:
            pile = eventlet.GreenPile(3)
            for call in (members.get_member, side[0].tier, side[1].benefits):
                pile.spawn(call, member_id)
            return list(pile)

        floor, before, after = [], [], []
        assert three()[0]["id"] == members.member_summary(member_id)["member"]["id"]  # warm, and the same member
        for _ in range(CALLS):
            floor.append(timed(members.ping)[0])
            before.append(timed(three)[0])
            after.append(timed(lambda: members.member_summary(member_id))[0])
        print(f"\nfloor: members.ping                              {percentiles(floor)}")
        print(f"get_member + tier + benefits, side by side       {percentiles(before)}")
        print(f"member_summary (one call)                        {percentiles(after)}")
        print(f"(load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    finally:
        pg_admin(f'DROP DATABASE IF EXISTS "cl_perf_members_{SIZES[0]}" WITH (FORCE)')
