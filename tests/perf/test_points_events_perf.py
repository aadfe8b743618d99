"""Points' handler of a paid visit (``visit_completed``), in process (issue 17: points' share of the flow's CPU):

    .venv/bin/python -m pytest tests/perf/test_points_events_perf.py -m perf -s -p no:randomly --backends postgresql

The points service runs alone in the test process on PostgreSQL (its outbox relay on, as in the flow); points
learns its ``POINTS_PERF_MEMBERS`` members (20) from ``member_enrolled`` events, then records' ``visit_completed``
(its contract's sample: two items, a card and a points payment; a return visit) is published for
``POINTS_PERF_BILLS`` bills (200) after 20 of warm-up, and the test waits until points' inbox holds them all.
Printed: CPU per bill of the test process (points' handler and its relay, plus the publisher and the wait, the
same in every run) and points' database round trips per bill (the service's engine, relay included).
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
from services.members import events as members_events
from services.members.events import MemberEnrolled
from services.points.service import PointsService
from services.records import events as records_events
from services.records.events import VisitCompleted
from tests.harness import service_config, store_for, wait_for

pytestmark = pytest.mark.perf

BILLS = int(os.environ.get("POINTS_PERF_BILLS", "200"))
MEMBERS = int(os.environ.get("POINTS_PERF_MEMBERS", "20"))
WARM_UP = 20


def test_points_visit_earn_cpu_per_paid_visit(start_service, amqp_uri):
    points = start_service(PointsService, "postgresql")
    dispatch = event_dispatcher(service_config(amqp_uri))
    store = store_for(points.database_url)
    engine = next(d for d in points.dependencies if isinstance(d, Database)).store.engine

    def send(contracts: Any, contract: Any, **changes: Any) -> None:
        dispatch(contract.producer, contract.event_type, {
            "event_id": str(uuid.uuid4()), "occurred_at": isoformat(utcnow()),
            **contracts.wire(contract.event_type, {**contract.sample, **changes})})

    def handled(consumer: str) -> int:
        with store.transaction() as session:
            return session.connection().exec_driver_sql(
                "SELECT count(*) FROM kit_inbox WHERE consumer = %(c)s", {"c": consumer}).scalar()

    ids = [uuid.uuid4() for _ in range(MEMBERS)]
    for member_id in ids:
        send(members_events.EVENTS, MemberEnrolled, member_id=member_id, referrer_id=None, enrolled_at=utcnow())

    def bills(count: int) -> None:
        for number in range(count):
            visit_id = uuid.uuid4()
            send(records_events.EVENTS, VisitCompleted, visit_id=visit_id, member_id=ids[number % MEMBERS],
                 bill_id=f"B-{visit_id}", completed_at=utcnow())

    try:
        wait_for(lambda: handled("points.on_member_enrolled") >= MEMBERS, timeout=60, interval=0.2,
                 message="points to know its members")
        bills(WARM_UP)
        wait_for(lambda: handled("points.on_visit_completed") >= WARM_UP, timeout=120, interval=0.2,
                 message="the warm-up bills")
        queries = []
        event.listen(engine, "before_cursor_execute", lambda *_: queries.append(1))
        profiler = cProfile.Profile(time.process_time)
        if os.environ.get("CARELOOP_PERF_PROFILE"):
            profiler.enable()
        cpu, started = time.process_time(), time.monotonic()
        bills(BILLS)
        wait_for(lambda: handled("points.on_visit_completed") >= WARM_UP + BILLS, timeout=600, interval=0.2,
                 message="every bill's earn")
        cpu, took = time.process_time() - cpu, time.monotonic() - started
        profiler.disable()
        if os.environ.get("CARELOOP_PERF_PROFILE"):
            profiler.dump_stats(os.environ["CARELOOP_PERF_PROFILE"])
        print(f"\nPOINTS VISIT EARN {BILLS} bills in {took:.1f} s: {cpu * 1000 / BILLS:.2f} ms CPU per bill (test "
              f"process), {len(queries) / BILLS:.1f} queries per bill on points' engine (relay included), "
              f"load average {os.getloadavg()}")
    finally:
        store.dispose()
