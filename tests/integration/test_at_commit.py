"""What a command leaves for its commit (``kit.commit.at_commit``: outbox rows, stored answers, inbox rows) is
written exactly when the writes made at once would have been: with the commit, never after a rollback, never
from a savepoint that was rolled back; on PostgreSQL with the COMMIT in one query, on SQLite one by one."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from services.kit.outbox import write_event
from tests.harness import scalar, store_for


@pytest.fixture
def url(databases, backend):
    return databases.fresh(backend, "notifications")


def count(url: str, event_type: str) -> int:
    return scalar(url, "SELECT count(*) FROM kit_outbox WHERE event_type = :t", t=event_type)


def test_rows_left_for_the_commit_are_written_with_it_and_dropped_with_a_rollback(url):
    store = store_for(url)
    try:
        with store.transaction() as session:
            write_event(session, "kept", {"n": 1})
            write_event(session, "kept", {"n": 2})
        with pytest.raises(RuntimeError), store.transaction() as session:
            write_event(session, "dropped", {"n": 3})
            raise RuntimeError("the command failed")
        with store.transaction() as session:  # the session committed directly, not by Store.commit
            write_event(session, "direct", {"n": 4})
            session.commit()
    finally:
        store.dispose()
    assert (count(url, "kept"), count(url, "dropped"), count(url, "direct")) == (2, 0, 1)


def test_a_rolled_back_savepoint_drops_what_was_left_in_it(url):
    store = store_for(url)
    try:
        with store.transaction() as session:
            write_event(session, "before", {})
            savepoint = session.begin_nested()
            write_event(session, "inside", {})
            session.execute(text("SELECT 1"))
            savepoint.rollback()
            with session.begin_nested():
                write_event(session, "released", {})
    finally:
        store.dispose()
    assert [count(url, kind) for kind in ("before", "inside", "released")] == [1, 0, 1]
