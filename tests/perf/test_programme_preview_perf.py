"""Benchmark: the programme preview (``members.preview_programme``'s query) over 100,000 members.

    .venv/bin/python -m pytest tests/perf/test_programme_preview_perf.py -m perf -s -p no:randomly
    # size: PERF_PREVIEW_MEMBERS (default 100000)

The members database is seeded with COPY as the members nightly benchmark seeds it (members with their
visits, points and top-ups); the preview of a cheaper silver is timed against the programme in force,
beside the floor: plain full scans of the same four tables in the same run (what any answer that reads
every member's 12 months must at least do). The query's plan is printed.
"""

from __future__ import annotations

import copy
import os
import statistics
import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from services.members import programme_versions, standings
from services.members.rules.programme import DEFAULT_PROGRAMME, programme_document
from tests.perf.test_members_nightly import DAY, admin, prepare

SIZE = int(os.environ.get("PERF_PREVIEW_MEMBERS", "100000"))
ROUNDS = 5


def timed(run) -> tuple[float, object]:
    started = time.perf_counter()
    answer = run()
    return (time.perf_counter() - started) * 1000, answer


@pytest.mark.perf
@pytest.mark.timeout(3600)
def test_the_preview_of_100k_members_costs_about_a_scan_of_their_activity():
    url, written = prepare(SIZE)
    engine = create_engine(url)
    try:
        document = copy.deepcopy(programme_document(DEFAULT_PROGRAMME))
        document["tiers"][1]["thresholds"]["spend_minor"] = 100_000
        proposed = programme_versions.parse(document, "CNY")
        scans = "; ".join(f"SELECT count(*), sum(length(member_id::text)) FROM {table}"
                          for table in ("member_visits", "member_points", "member_top_ups"))
        with Session(engine) as session:
            floor, previews = [], []
            for _ in range(ROUNDS):
                ms, _ = timed(lambda: [session.execute(text(sql)).all() for sql in
                                       ("SELECT count(*), count(DISTINCT tier) FROM members", *scans.split("; "))])
                floor.append(ms)
                ms, found = timed(lambda: standings.preview(session, DEFAULT_PROGRAMME, proposed, DAY))
                previews.append(ms)
        print(f"\n{SIZE:,} members seeded with COPY in {written['seconds']} s")
        print(f"floor: full scans of members and its three activity tables  p50 {statistics.median(floor):7.1f} ms")
        print(f"preview of a cheaper silver (one grouped statement)         p50 {statistics.median(previews):7.1f} ms"
              f"  max {max(previews):7.1f} ms  (n={ROUNDS})")
        print(f"answer: {found.members:,} active, {found.up:,} up, {found.down:,} down, "
              f"{found.already_short:,} already short, {found.unchanged:,} unchanged")
        print(f"(load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
        assert found.members > 0.9 * SIZE and found.up > 0 and found.down == 0  # cheaper: nobody goes down
    finally:
        engine.dispose()
        admin(f'DROP DATABASE IF EXISTS "cl_perf_members_{SIZE}" WITH (FORCE)')


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

    url, _written = prepare(SIZE)
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
        admin(f'DROP DATABASE IF EXISTS "cl_perf_members_{SIZE}" WITH (FORCE)')
