"""The hourly purge of handled events and stored answers: what is past its retention goes, nothing else,
oldest first in batches (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select

from services.kit.clock import utcnow
from services.kit.models import IdempotentCommand, InboxEntry
from services.kit.retention import purge, purge_older, retention
from tests.harness import store_for


@pytest.fixture
def store(databases, backend):
    store = store_for(databases.fresh(backend, "points"))
    yield store
    store.dispose()


def _fill(store, ages_in_days):
    now = utcnow()
    with store.transaction() as session:
        session.execute(insert(InboxEntry.__table__), [
            {"consumer": "points.on_visit", "event_id": f"e{n}", "handled_at": now - timedelta(days=age)}
            for n, age in enumerate(ages_in_days)])
        session.execute(insert(IdempotentCommand.__table__), [
            {"command": "points.earn", "key": f"k{n}", "request_hash": "h", "response": "{}",
             "created_at": now - timedelta(days=age)}
            for n, age in enumerate(ages_in_days)])


def _left(store, column):
    with store.transaction() as session:
        return sorted(session.execute(select(column)).scalars())


def test_only_rows_past_the_retention_go_and_in_batches(store):
    # 23 rows 40 days old, then 4 from today: oldest first by id, as they were written
    _fill(store, [40] * 23 + [0] * 4)
    assert purge_older(store, InboxEntry.__table__, "handled_at", timedelta(days=30), batch=5) == 23
    assert _left(store, InboxEntry.event_id) == ["e23", "e24", "e25", "e26"]
    counts = purge(store, timedelta(days=30), timedelta(days=30))
    assert counts == {"kit_inbox": 0, "kit_idempotency": 23}
    assert _left(store, IdempotentCommand.key) == ["k23", "k24", "k25", "k26"]


def test_stops_at_the_first_batch_holding_a_kept_row(store):
    # a fresh row among old ones (written late, as a slow transaction's would be) ends the walk there:
    # the old rows behind it wait for the next hour rather than the purge reading the whole table
    _fill(store, [40, 40, 0, 40, 40, 40])
    assert purge_older(store, InboxEntry.__table__, "handled_at", timedelta(days=30), batch=2) == 3  # e0 e1, e3
    assert _left(store, InboxEntry.event_id) == ["e2", "e4", "e5"]
    assert purge_older(store, InboxEntry.__table__, "handled_at", timedelta(days=30), batch=10) == 2
    with store.transaction() as session:
        assert session.execute(select(func.count()).select_from(InboxEntry)).scalar() == 1


def test_nothing_to_purge_on_an_empty_table(store):
    assert purge(store, timedelta(days=1), timedelta(days=1)) == {"kit_inbox": 0, "kit_idempotency": 0}


@pytest.mark.parametrize("bad", ["0", "-3"])
def test_a_retention_that_is_not_positive_is_refused(bad):
    with pytest.raises(ValueError, match="INBOX_RETENTION_DAYS"):
        retention({"INBOX_RETENTION_DAYS": bad}, "INBOX_RETENTION_DAYS")
    assert retention({}, "INBOX_RETENTION_DAYS") == timedelta(days=30)
