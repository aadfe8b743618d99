"""``python -m tests.perf.visits_import_profile MEMBERS [BILLS_PER_BATCH] [--profile out.prof]``: records' side of
a visits import (``RecordsService.import_visits``, the commit) in this process on a fresh PostgreSQL database,
without RabbitMQ: where a bill's time goes (cProfile counting CPU time) and bills (lines) a second.

Each member has a patient row already (as ``member_enrolled`` leaves after a members import) and two bills of
two lines each, as ``tests.import_samples.visits`` writes them (an exam paid by WeChat, a filling); the bills
go in batches as the interfaces process sends them (``imports.visits.send``: 500 lines, 250 bills, a batch).
The ``visits_imported`` events are written to the outbox and committed with each batch.
"""

from __future__ import annotations

import cProfile
import os
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

os.environ.setdefault("CARELOOP_DATA_KEYS", "test1=" + "dGVzdC1rZXktb25lLTMyLWJ5dGVzLWxvbmctb2suLi4=")
os.environ.setdefault("CARELOOP_INDEX_KEY", "dGVzdC1pbmRleC1rZXktMzItYnl0ZXMtbG9uZy1vay4=")

from sqlalchemy import func, insert, select  # noqa: E402

from services.kit.caller import Identity  # noqa: E402
from services.kit.clock import isoformat, utcnow  # noqa: E402
from services.kit.db import Store  # noqa: E402
from services.kit.migrate import upgrade  # noqa: E402
from services.kit.outbox import write_event  # noqa: E402
from services.records.events import EVENTS  # noqa: E402
from services.records.models import Patient, Visit  # noqa: E402
from services.records.service import RecordsService  # noqa: E402
from tests.harness import PG_ADMIN_URL, pg_admin  # noqa: E402

ADMIN = Identity(kind="staff", subject="admin", role="group_admin", branches=("*",))
LINES_PER_BILL = 2


def bills(members: list[uuid.UUID], job: str) -> list[dict[str, Any]]:
    today = utcnow().replace(hour=2, minute=30, second=0, microsecond=0)
    return [{"key": f"import:{job}:B{i:06d}-{b}", "bill_id": f"B{i:06d}-{b}", "member_id": str(member),
             "branch": "SH01", "doctor_id": None, "kind": None, "currency": "CNY",
             "completed_at": isoformat(today - timedelta(days=1 + 30 * b)),
             "items": [{"category": "exam", "code": "EX01", "amount_minor": 10000},
                       {"category": "treatment", "code": "补牙", "amount_minor": 20000}],
             "payments": [{"method": "mobile", "amount_minor": 30000}]}
            for i, member in enumerate(members) for b in range(2)]


def _unasked(member_id: str) -> dict[str, Any]:
    raise AssertionError(f"member {member_id} has no patient row: the fill should have written it")


def service_in(session: Any, get_member: Callable[[str], dict[str, Any]] = _unasked) -> RecordsService:
    """``RecordsService`` with its dependencies as a worker sees them, on ``session`` (events to the outbox);
    ``get_member``: what members answers of a member records has no patient row for."""
    service = RecordsService.__new__(RecordsService)

    def emit(event_type: str, payload: dict[str, Any]) -> str:
        return write_event(session, event_type, EVENTS.wire(event_type, payload))

    service.__dict__.update(db=SimpleNamespace(session=session), caller=ADMIN, config={},
                            events=SimpleNamespace(emit=emit), members=SimpleNamespace(get_member=get_member))
    return service


def main(count: int, size: int, profile: str | None) -> None:
    name = f"cl_visits_profile_{uuid.uuid4().hex[:8]}"
    pg_admin(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://") + "/" + name
    try:
        upgrade("records", url)
        store = Store(url)
        members = [uuid.uuid4() for _ in range(count)]
        with store.transaction() as session:
            session.execute(insert(Patient), [
                {"member_id": member, "home_branch": "SH01", "completed_visits": 0, "paid_visits": 0,
                 "created_at": datetime.now(UTC), "membership_status": "active"} for member in members])
        rows = bills(members, "profile")
        batches = [rows[at:at + size] for at in range(0, len(rows), size)]
        profiler = cProfile.Profile(time.process_time) if profile else None
        started, cpu = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        for batch in batches:
            with store.transaction() as session:
                outcomes = service_in(session).import_visits({"dry_run": False, "rows": batch})["items"]
                assert all(outcome["status"] == "imported" for outcome in outcomes), outcomes[:3]
        if profiler:
            profiler.disable()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        with store.transaction() as session:
            stored = session.scalar(select(func.count()).select_from(Visit))
            counted = session.scalar(select(func.sum(Patient.completed_visits)))
        assert stored == counted == len(rows), (stored, counted, len(rows))
        store.dispose()
        if profiler:
            profiler.dump_stats(profile)
        lines = len(rows) * LINES_PER_BILL
        print(f"{len(rows):,} bills ({lines:,} lines) of {count:,} members, {size} bills a batch, load "
              f"{os.getloadavg()[0]:.1f}: {seconds:.2f} s wall, {len(rows) / seconds:,.0f} bills/s, "
              f"{lines / seconds:,.0f} lines/s; {cpu:.2f} s CPU ({cpu / len(rows) * 1000:.2f} ms a bill)")
    finally:
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    arguments = sys.argv[1:]
    out = None
    if "--profile" in arguments:
        at = arguments.index("--profile")
        out = arguments[at + 1]
        del arguments[at:at + 2]
    main(int(arguments[0]), int(arguments[1]) if len(arguments) > 1 else 250, out)
