"""The scheduler's claim (``schedule.claim_due``) reads due deliveries in its own order from ``ix_deliveries_due``.

``WHERE state = 'queued' AND due_at <= :now ORDER BY due_at, id LIMIT n FOR UPDATE SKIP LOCKED``: on (state, due_at)
alone the index could not give the ``id`` order, so PostgreSQL read every due row and sorted them at every claim; with
many due at one moment (an import's welcome messages, due in the morning) a sequential scan of the whole table and a
sort (``EXPLAIN``, PostgreSQL 15). On (state, due_at, id) (``not0006``) the rows come
in order and the scan stops at the ``LIMIT``.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, text

from services.kit.clock import utcnow
from services.kit.db import Store
from services.notifications.schedule import claim_due

DUE = 4_000


@pytest.mark.backends("postgresql")  # SQLite: one process, no row locks; its planner is not the point here
def test_the_claim_reads_due_deliveries_in_order_from_the_index_without_sorting_them(databases: Any) -> None:
    store = Store(databases.fresh("postgresql", "notifications"), pool_size=1)
    try:
        with store.transaction() as session:
            session.execute(text(
                "INSERT INTO deliveries (id, member_id, journey, dedupe_key, state, due_at, created_at, updated_at, "
                "attempts) SELECT gen_random_uuid(), gen_random_uuid(), 'welcome', 'welcome:' || n, 'queued', "
                "now() - interval '1 minute', now(), now(), 0 FROM generate_series(1, :due) n"),
                {"due": DUE})  # an import's welcomes: queued in one statement, all due at the same moment
        with store.transaction() as session:
            session.execute(text("ANALYZE deliveries"))  # the statistics say: every row is due
        sent: list[tuple[str, Any]] = []
        event.listen(store.engine, "before_cursor_execute",
                     lambda _c, _cursor, statement, parameters, *_: sent.append((statement, parameters)))
        claimed = claim_due(store, utcnow(), 100, "test-replica")
        assert len(claimed) == 100
        (statement, parameters), = [(s, p) for s, p in sent if "SKIP LOCKED" in s]
        with store.engine.connect() as connection:
            plan = "\n".join(row[0] for row in connection.exec_driver_sql(
                "EXPLAIN " + statement.removeprefix("BEGIN;"), parameters))
    finally:
        store.dispose()
    assert "Index Scan using ix_deliveries_due" in plan and "Sort" not in plan, plan
