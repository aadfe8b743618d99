"""Batch jobs: bounded, resumable, once per run key, one runner at a time (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from services.kit.jobs import progress, run_batches
from services.kit.models import JobRun
from tests.harness import store_for

ITEMS = list(range(1, 11))


@pytest.fixture
def store(databases, backend):
    store = store_for(databases.fresh(backend, "notifications"))
    with store.transaction() as session:
        session.execute(text("CREATE TABLE seen (item INTEGER PRIMARY KEY)"))
    yield store
    store.dispose()


def seen(store):
    with store.engine.connect() as connection:
        return [row[0] for row in connection.execute(text("SELECT item FROM seen ORDER BY item"))]


def step_of(size, fail_at=None):
    def step(session, cursor):
        start = cursor or 0
        batch = [item for item in ITEMS if item > start][:size]
        for item in batch:
            if item == fail_at:
                raise RuntimeError("crash in the middle of a batch")
            session.execute(text("INSERT INTO seen (item) VALUES (:item)"), {"item": item})
        return (batch[-1] if len(batch) == size else None), len(batch)
    return step


def test_bounded_then_resumed_then_never_again(store):
    first = run_batches(store, "count", "2026-11-23", step_of(3), max_batches=2)
    assert (first.finished, first.processed, first.batches) == (False, 6, 2)
    assert seen(store) == ITEMS[:6]
    rest = run_batches(store, "count", "2026-11-23", step_of(3))
    assert rest.finished and rest.processed == 4
    assert seen(store) == ITEMS
    again = run_batches(store, "count", "2026-11-23", step_of(3))
    assert again.skipped == "done" and again.processed == 0
    assert progress(store, "count", "2026-11-23") == {"job": "count", "run_key": "2026-11-23", "processed": 10,
                                                      "batches": 4, "finished": True}
    tomorrow = run_batches(store, "count", "2026-11-24", lambda session, cursor: (None, 0))
    assert tomorrow.finished and tomorrow.skipped is None  # another day is another run


def test_a_crash_mid_batch_keeps_the_cursor_and_the_effects_together(store):
    with pytest.raises(RuntimeError):
        run_batches(store, "count", "day", step_of(4, fail_at=6))
    assert seen(store) == [1, 2, 3, 4]  # the failed batch left nothing behind
    outcome = run_batches(store, "count", "day", step_of(4))
    assert outcome.finished and seen(store) == ITEMS


@pytest.mark.backends("postgresql")  # on SQLite one process runs each service; its gate serialises runners
def test_a_second_runner_leaves_the_job_to_the_one_holding_it(store, backend):
    run_batches(store, "count", "day", step_of(3), max_batches=1)
    holder = store.open_session()
    try:
        holder.scalars(select(JobRun).where(JobRun.job == "count").with_for_update()).one()
        outcome = run_batches(store, "count", "day", step_of(3))
        assert outcome.skipped == "busy" and outcome.processed == 0
    finally:
        holder.rollback()
        store.close_session(holder)
    assert run_batches(store, "count", "day", step_of(3)).finished
