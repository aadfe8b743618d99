"""Run one of points' daily jobs to the end, as the nightly timer would, and report time and memory.

    python -m tests.perf.points_jobs expire <database url> <local day>
    python -m tests.perf.points_jobs reconcile <database url> <local day>

Run in a process of its own so that the peak resident memory (VmHWM) is the job's: the baseline is
taken after imports and connecting, just before the job starts. Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from datetime import date
from typing import Any

warnings.filterwarnings("ignore", message="(?s).*Eventlet is deprecated")


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def main(argv: list[str]) -> int:
    import eventlet

    eventlet.monkey_patch()
    from services.kit.clock import utcnow
    from services.kit.config import group_from_config
    from services.kit.db import Store
    from services.kit.jobs import run_batches
    from services.kit.outbox import write_event
    from services.points import expiry, reconciliation
    from services.points.awards import Context
    from services.points.events import EVENTS
    from services.points.rules.programme import DEFAULT_PROGRAMME

    job, url, day = argv[0], argv[1], date.fromisoformat(argv[2])
    group = group_from_config({})
    ctx = Context(DEFAULT_PROGRAMME, group.zone, group.currency, utcnow(), "service:points")
    store = Store(url, pool_size=2)
    with store.transaction() as session:  # connect (and import the dialect) before the baseline
        session.connection()
    totals: dict[str, Any] = {}

    def emit(session: Any, event_type: str, payload: dict[str, Any]) -> None:
        write_event(session, event_type, EVENTS.wire(event_type, payload))

    if job == "expire":
        step = expiry.expire_lots_step(ctx, day, emit)
    elif job == "reconcile":
        step = reconciliation.nightly_step(1000, totals.update)
    else:
        raise SystemExit(f"unknown job {job}")
    baseline = _status_kib("VmRSS")
    started = time.perf_counter()
    outcome = run_batches(store, f"perf_{job}", day.isoformat(), step)
    seconds = time.perf_counter() - started
    peak = _status_kib("VmHWM")
    store.dispose()
    print(json.dumps({"job": job, "seconds": round(seconds, 2), "processed": outcome.processed,
                      "batches": outcome.batches, "baseline_rss_mib": round(baseline / 1024, 1),
                      "peak_rss_mib": round(peak / 1024, 1), "peak_over_baseline_mib": round((peak - baseline) / 1024, 1),
                      "totals": totals}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
