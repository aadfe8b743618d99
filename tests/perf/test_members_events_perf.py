"""Members' handlers of a paid visit, in process (issue 17: members was the flow's biggest share of CPU):

    .venv/bin/python -m pytest tests/perf/test_members_events_perf.py -m perf -s -p no:randomly --backends postgresql

The members service runs in the test process on PostgreSQL; for each bill the events members receives are
published as their producers would (records' ``visit_completed``, then points' ``visit_points_earned`` with two
postings: the spend and the visit; before issue 17's change, two ``points_earned``), ``MEMBERS_PERF_BILLS`` bills (200) over 20 members after 20 bills of warm-up, and the test waits
until members' inbox holds them all. Printed: CPU per bill of the test process (members' handlers, plus the
publisher and the wait, the same in every run) and members' database round trips per bill (the service's engine).
``CARELOOP_PERF_PROFILE=<file>`` leaves a cProfile (CPU time) of the measured part.
"""

from __future__ import annotations

import cProfile
import os
import time
import uuid
from typing import Any

import pytest
from nameko.standalone.events import event_dispatcher
from sqlalchemy import event

from services.kit.clock import isoformat, utcnow
from services.kit.db import Database
from services.members.service import MembersService
from services.points import events as points_events
from services.points.events import VisitPointsEarned
from services.records import events as records_events
from services.records.events import VisitCompleted
from tests.harness import service_config, store_for, wait_for

pytestmark = pytest.mark.perf

BILLS = int(os.environ.get("MEMBERS_PERF_BILLS", "200"))
MEMBERS = 20


def test_members_handlers_cpu_per_paid_visit(start_service, rpc, amqp_uri):
    members = start_service(MembersService, "postgresql")
    proxy = rpc()
    ids = [uuid.UUID(proxy.members.enrol({"full_name": f"Perf Member{n}", "phone": f"1390077{n:04d}",
                                          "birth_date": "1985-06-15", "home_branch": "SH01"})["id"])
           for n in range(MEMBERS)]
    dispatch = event_dispatcher(service_config(amqp_uri))
    store = store_for(members.database_url)
    engine = next(d for d in members.dependencies if isinstance(d, Database)).store.engine

    def send(contracts: Any, contract: Any, **changes: Any) -> None:
        dispatch(contract.producer, contract.event_type, {
            "event_id": str(uuid.uuid4()), "occurred_at": isoformat(utcnow()),
            **contracts.wire(contract.event_type, {**contract.sample, **changes})})

    def bills(count: int) -> None:
        for number in range(count):
            member_id, visit_id = ids[number % MEMBERS], uuid.uuid4()
            send(records_events.EVENTS, VisitCompleted, visit_id=visit_id, member_id=member_id, kind="return",
                 bill_id=f"B-{visit_id}", qualifying_minor=25_000, completed_at=utcnow())
            send(points_events.EVENTS, VisitPointsEarned, member_id=member_id, visit_id=visit_id, earned_at=utcnow(),
                 postings=[{"posting_id": str(uuid.uuid4().int % 10**15), "points": points, "rule": rule}
                           for rule, points in (("spend", 250), ("visit", 10))])

    def handled() -> int:
        with store.transaction() as session:
            return session.connection().exec_driver_sql(
                "SELECT count(*) FROM kit_inbox WHERE consumer IN ('members.on_visit_completed', "
                "'members.on_visit_points_earned')").scalar()

    try:
        bills(20)
        wait_for(lambda: handled() >= 40, timeout=120, interval=0.2, message="the warm-up bills")
        queries = []
        event.listen(engine, "before_cursor_execute", lambda *_: queries.append(1))
        profiler = cProfile.Profile(time.process_time)
        if os.environ.get("CARELOOP_PERF_PROFILE"):
            profiler.enable()
        cpu, started = time.process_time(), time.monotonic()
        bills(BILLS)
        wait_for(lambda: handled() >= 40 + 2 * BILLS, timeout=600, interval=0.2, message="every bill's events")
        cpu, took = time.process_time() - cpu, time.monotonic() - started
        profiler.disable()
        if os.environ.get("CARELOOP_PERF_PROFILE"):
            profiler.dump_stats(os.environ["CARELOOP_PERF_PROFILE"])
        print(f"\nMEMBERS EVENTS {BILLS} bills (2 events each: the visit, its earn) in {took:.1f} s: {cpu * 1000 / BILLS:.2f} ms CPU per "
              f"bill (test process), {len(queries) / BILLS:.1f} queries per bill on members' engine (relay included)")
    finally:
        store.dispose()
