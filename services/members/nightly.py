"""The members' nightly work, in order: yearly tier reviews, review notices ending, segmentation, and the kept
12-month sums whose window moved past their first day of activity (``windows.refresh_stale``; the first night
after the release that made them, every member's once if there was activity: ``windows.REBUILD``).

Each job is a ``kit.jobs.run_batches`` run keyed by the group's local day: bounded (``max_batches`` per
call; the timer calls again a minute later), resumable after a crash (effects, events and cursor commit
together), done once per day, one replica at a time. Reviews and notices catch up days missed (they take
everything due on or before the day); segmentation grades the membership as of that night.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from services.kit.clock import utcnow
from services.kit.db import Store
from services.kit.jobs import Outcome, run_batches
from services.kit.outbox_batch import BatchEvents
from services.kit.telemetry import counter, gauge
from services.members import segmentation, tier_ledger, windows
from services.members.events import EVENTS
from services.members.rules.programme import Programme
from services.members.rules.segments import Bounds

log = logging.getLogger(__name__)

JOBS = ("tier_reviews", "tier_notices", "segments", windows.REBUILD[0], "windows")

PROCESSED = counter("careloop_members_nightly_processed_total", "Members processed by nightly jobs", ("job",))
FINISHED_AT = gauge("careloop_members_nightly_finished_timestamp_seconds",
                    "When each nightly job last finished a day's run (Unix time)", ("job",))


@dataclass(frozen=True)
class BatchSizes:
    reviews: int = 500
    segments: int = 1000
    windows: int = 1000


def _with_events(step: Any) -> Any:
    """A batch step whose events are written together at the end of the batch (kit.outbox_batch)."""

    def run_step(session: Session, cursor: Any) -> tuple[Any, int]:
        events = BatchEvents(session, EVENTS)
        result = step(session, cursor, events)
        events.flush()
        return result

    return run_step


def run(store: Store, programme: Programme, zone: ZoneInfo, day: date, max_batches: int | None = None,
        sizes: BatchSizes = BatchSizes()) -> dict[str, dict[str, Any]]:
    """Run (or continue) the jobs of ``day``; a job starts only when the one before it finished."""
    key = day.isoformat()

    @_with_events
    def reviews(session: Session, cursor: Any, emit: BatchEvents) -> tuple[Any, int]:
        return tier_ledger.review_batch(session, programme, zone, day, utcnow(), cursor, sizes.reviews, emit)

    @_with_events
    def notices(session: Session, cursor: Any, emit: BatchEvents) -> tuple[Any, int]:
        return tier_ledger.notice_batch(session, programme, zone, day, utcnow(), cursor, sizes.reviews, emit)

    @_with_events
    def segments(session: Session, cursor: Any, emit: BatchEvents) -> tuple[Any, int]:
        if cursor is None:  # measure once; every batch of the night grades against the same bounds
            bounds = segmentation.measure(session, programme, day - timedelta(days=1))
            return {"bounds": bounds.to_json(), "after": None}, 0
        after, count = segmentation.grade_batch(session, programme, Bounds.from_json(cursor["bounds"]), day,
                                                cursor["after"], sizes.segments, emit)
        return ({**cursor, "after": after} if after else None), count

    def by_member(refresh: Any) -> Any:
        """A step of the kept 12-month sums (``windows``), its cursor the last member id as text."""
        def step(session: Session, cursor: Any) -> tuple[Any, int]:
            after, count = refresh(session, day, uuid.UUID(cursor) if cursor else None, sizes.windows, utcnow())
            return (str(after) if after else None), count

        return step

    with store.transaction() as session:
        rebuild = () if windows.built(session) else ((*windows.REBUILD, by_member(windows.rebuild_batch)),)
    outcomes: dict[str, dict[str, Any]] = {}
    for job, run_key, step in (("tier_reviews", key, reviews), ("tier_notices", key, notices),
                               ("segments", key, segments), *rebuild,
                               ("windows", key, by_member(windows.refresh_stale))):
        started = time.perf_counter()
        outcome: Outcome = run_batches(store, job, run_key, step, max_batches=max_batches)
        outcomes[job] = {**asdict(outcome), "seconds": round(time.perf_counter() - started, 3)}
        log.info("nightly job", extra={"job": job, "day": key, **outcomes[job]})
        PROCESSED.labels(job).inc(outcome.processed)
        if outcome.finished and outcome.skipped is None:
            FINISHED_AT.labels(job).set(utcnow().timestamp())
            if job == "segments" and store.is_postgresql:
                # a night can rewrite much of the table: fresh statistics keep the lists on their index
                with store.transaction() as session:
                    session.execute(text("ANALYZE member_segments"))
        if not outcome.finished:
            break
    return outcomes
