"""Batch jobs (nightly reviews, expiry, scans): bounded, resumable, once per run, one replica at a time.

    outcome = run_batches(self.db.store, "tier_review", local_day.isoformat(), step, max_batches=50)

``step(session, cursor)`` does one batch inside a transaction and returns ``(next_cursor, processed)``
(``next_cursor`` None when the job is done). The batch's effects, its outbox events and the job's
cursor commit together, so a crash loses nothing and repeats nothing: the next run continues from
the cursor. A finished run key is never run again. Replicas serialise on the job's row; the one that
finds it locked leaves the work to the other.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import eventlet
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from services.kit.clock import utcnow
from services.kit.db import Store
from services.kit.models import JobRun

Step = Callable[[Session, Any], tuple[Any, int]]


@dataclass(frozen=True)
class Outcome:
    finished: bool
    processed: int = 0
    batches: int = 0
    skipped: str | None = None  # "done" (ran before) or "busy" (another replica holds it)


def _claim(session: Session, store: Store, job: str, run_key: str) -> JobRun | None:
    now = utcnow()
    insert = (postgresql.insert if store.is_postgresql else sqlite.insert)(JobRun)
    session.execute(insert.values(job=job, run_key=run_key, processed=0, batches=0, started_at=now,
                                  updated_at=now).on_conflict_do_nothing(index_elements=["job", "run_key"]))
    query = select(JobRun).where(JobRun.job == job, JobRun.run_key == run_key)
    if store.is_postgresql:
        query = query.with_for_update(skip_locked=True)
    return session.scalars(query).first()


def run_batches(store: Store, job: str, run_key: str, step: Step, max_batches: int | None = None) -> Outcome:
    """Run ``step`` batch by batch until done or ``max_batches`` were run in this call."""
    processed = batches = 0
    while max_batches is None or batches < max_batches:
        with store.transaction() as session:
            run = _claim(session, store, job, run_key)
            if run is None:
                return Outcome(finished=False, processed=processed, batches=batches, skipped="busy")
            if run.finished_at is not None:
                return Outcome(finished=True, processed=processed, batches=batches,
                               skipped="done" if batches == 0 else None)
            cursor = json.loads(run.cursor) if run.cursor else None
            next_cursor, count = step(session, cursor)
            now = utcnow()
            run.cursor = json.dumps(next_cursor) if next_cursor is not None else run.cursor
            run.processed += count
            run.batches += 1
            run.updated_at = now
            if next_cursor is None:
                run.finished_at = now
        processed += count
        batches += 1
        if next_cursor is None:
            return Outcome(finished=True, processed=processed, batches=batches)
        eventlet.sleep(0)  # let replies, heartbeats and other workers run between batches
    return Outcome(finished=False, processed=processed, batches=batches)


def progress(store: Store, job: str, run_key: str) -> dict[str, Any] | None:
    with store.transaction() as session:
        run = session.scalars(select(JobRun).where(JobRun.job == job, JobRun.run_key == run_key)).first()
        if run is None:
            return None
        return {"job": run.job, "run_key": run.run_key, "processed": run.processed, "batches": run.batches,
                "finished": run.finished_at is not None}
