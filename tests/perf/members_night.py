"""Run the members' nights on a benchmark database, in a process of its own, and print JSON figures.

    python -m tests.perf.members_night <database url> <day> [--explain]

Runs the production code (``services.members.nightly.run``) for ``day`` (first grading: every segment
row written) and ``day + 1`` (a steady night), times the upgrade check and segment list pages, and
reports the peak resident memory of each phase (the kernel's high-water mark, reset between phases).
With ``--explain``, the first run of each SELECT the jobs issue is preceded by EXPLAIN (ANALYZE, BUFFERS)
on the same connection, and the plans are printed.
"""

from __future__ import annotations

import warnings

warnings.filterwarnings("ignore", message="(?s).*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()  # as the service runs

import json  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from datetime import date, timedelta  # noqa: E402
from typing import Any  # noqa: E402

from sqlalchemy import event, select, text  # noqa: E402

from services.kit.config import group_from_config  # noqa: E402
from services.kit.db import Store  # noqa: E402
from services.members import nightly, segmentation, tier_ledger  # noqa: E402
from services.members.models import Member  # noqa: E402
from services.members.rules.programme import DEFAULT_PROGRAMME  # noqa: E402

INTERESTING = re.compile(r"FROM (members|member_visits|member_points|member_top_ups|member_segments|member_activity)\b")


def memory_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # resets VmHWM to the current RSS


def explain_plans(store: Store) -> dict[str, str]:
    """EXPLAIN (ANALYZE, BUFFERS) each distinct SELECT once, just before it first runs."""
    plans: dict[str, str] = {}

    @event.listens_for(store.engine, "before_cursor_execute")
    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if executemany or not statement.lstrip().upper().startswith(("SELECT", "WITH")):
            return
        if not INTERESTING.search(statement) or "kit_" in statement:
            return
        key = re.sub(r"IN \((?:%\(\w+\)s(?:::\w+)?,?\s*)+\)", "IN (...)", statement)
        key = re.sub(r"\s+", " ", key)
        if key in plans:
            return
        explain = conn.connection.dbapi_connection.cursor()
        explain.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
        plans[key] = "\n".join(row[0] for row in explain.fetchall())
        explain.close()

    return plans


def phase(label: str, work: Any) -> dict[str, Any]:
    reset_peak()
    before = memory_mb("VmRSS")
    started = time.perf_counter()
    result = work()
    return {"phase": label, "seconds": round(time.perf_counter() - started, 2), "rss_before_mb": round(before, 1),
            "peak_rss_mb": round(memory_mb("VmHWM"), 1), "result": result}


def main(argv: list[str]) -> int:
    url, day = argv[0], date.fromisoformat(argv[1])
    store = Store(url, pool_size=2)
    zone = group_from_config({}).zone
    plans = explain_plans(store) if "--explain" in argv else {}
    report: dict[str, Any] = {"phases": []}
    with store.transaction() as session:
        started = time.perf_counter()
        session.execute(text("SELECT count(*), sum(qualifying_minor) FROM member_visits")).one()
        session.execute(text("SELECT count(*) FROM members")).one()
        report["floor_full_scans_seconds"] = round(time.perf_counter() - started, 2)

    for label, night in (("night 1 (first grading)", day), ("night 2 (steady)", day + timedelta(days=1))):
        report["phases"].append(phase(label, lambda night=night: nightly.run(store, DEFAULT_PROGRAMME, zone, night)))

    def upgrade_checks() -> dict[str, Any]:
        with store.transaction() as session:
            ids = list(session.scalars(select(Member.id).order_by(Member.id).limit(1000)))
        sample = random.Random(1).sample(ids, 200)
        started = time.perf_counter()
        for member_id in sample:
            with store.transaction() as session:
                tier_ledger.activity_as_of(session, DEFAULT_PROGRAMME, member_id, day)
        return {"checks": len(sample), "mean_ms": round((time.perf_counter() - started) * 1000 / len(sample), 2)}

    def list_pages() -> dict[str, Any]:
        pages, cursor, started = 0, None, time.perf_counter()
        while pages < 20:
            with store.transaction() as session:
                _items, cursor = segmentation.members_in(session, "B", "SH01", None, 100, cursor)
            pages += 1
            if not cursor:
                break
        with store.transaction() as session:
            segmentation.members_in(session, "A", None, True, 100, None)
        return {"pages": pages, "mean_ms": round((time.perf_counter() - started) * 1000 / (pages + 1), 2)}

    report["phases"].append(phase("upgrade check (one member's 12 months)", upgrade_checks))
    report["phases"].append(phase("segment list pages of 100", list_pages))
    with store.transaction() as session:
        report["segments"] = dict(session.execute(text(
            "SELECT segment, count(*) FROM member_segments GROUP BY segment ORDER BY segment")).all())
        report["outbox"] = dict(session.execute(text(
            "SELECT event_type, count(*) FROM kit_outbox GROUP BY event_type ORDER BY event_type")).all())
    report["plans"] = plans
    store.dispose()
    print(json.dumps(report, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
