"""Statements PostgreSQL keeps prepared per connection (``kit.db.prepared``, ``AtCommit(prepare=True)``).

A marked statement's first run on a connection sends ``PREPARE`` and ``EXECUTE`` in one query; every later run on that
connection sends ``EXECUTE`` alone, but for the runs that prepare it again (``REPLAN_AFTER``, then twice as many...),
so that a plan made while a table was small does not outlive the table's growth. A query that prepared a statement
and then failed leaves the connection running that statement as plain text (whether the ``PREPARE`` took is not
known), never a second ``PREPARE`` of the same name.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DataError, IntegrityError

from services.kit import idempotency, inbox
from services.kit.clock import utcnow
from services.kit.commit import at_commit
from services.kit.db import REPLAN_AFTER, Store, _prepared_form, prepared
from services.kit.outbox import _INSERT_EVENT, _MARK_SENT, write_event
from tests.harness import primary_backend

pytestmark = pytest.mark.backends("postgresql")  # SQLite runs every statement as it is

_DIVIDE = prepared(text("SELECT 100 / :divisor AS quotient"))


@pytest.fixture
def store(databases: Any, request: pytest.FixtureRequest) -> Any:
    """A store with one connection, so that every transaction runs on the same server session."""
    store = Store(databases.fresh(primary_backend(request), "points"), pool_size=1)
    sent: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda *args: sent.append(args[2]))
    store.sent = sent
    yield store
    store.dispose()


def _prepared_names(session: Any) -> set[str]:
    return set(session.execute(text("SELECT name FROM pg_prepared_statements")).scalars())


def test_a_marked_statement_is_prepared_with_its_first_run_and_then_only_executed(store):
    for number in range(3):
        with store.transaction() as session:
            claimed = idempotency.claim(session, "prepared_test", f"key-{number}", "f" * 64)
            assert claimed is not None
            prepared_here = _prepared_names(session)
    first, second, third = (sql for sql in store.sent if "kit_idempotency" in sql or "EXECUTE" in sql)
    assert first.startswith("BEGIN;PREPARE careloop_") and ";EXECUTE careloop_" in first
    name = first.split("PREPARE ", 1)[1].split()[0]
    assert second.startswith(f"BEGIN;EXECUTE {name}(") and "PREPARE" not in second
    assert third == second
    assert name in prepared_here
    with store.transaction() as session:  # the rows are there: the executed statement did the claim's work
        keys = session.execute(text("SELECT key FROM kit_idempotency WHERE command = 'prepared_test' ORDER BY key"))
        assert list(keys.scalars()) == ["key-0", "key-1", "key-2"]


def test_a_statement_whose_preparing_query_failed_runs_as_plain_text_on_that_connection(store):
    with pytest.raises(DataError), store.transaction() as session:  # PREPARE took, EXECUTE failed
        session.execute(_DIVIDE, {"divisor": 0})
    for divisor in (4, 5):
        with store.transaction() as session:
            assert session.execute(_DIVIDE, {"divisor": divisor}).scalar() == 100 // divisor
    divisions = [sql for sql in store.sent if "100 /" in sql or "EXECUTE" in sql]
    assert "PREPARE" in divisions[0]
    assert all("PREPARE" not in sql and "EXECUTE" not in sql for sql in divisions[1:]), divisions


def test_statements_left_for_the_commit_are_prepared_once_and_their_rows_written(store):
    for number in range(3):
        with store.transaction() as session:
            write_event(session, "prepared_tested", {"n": number})
    commits = [sql for sql in store.sent if sql.endswith("COMMIT")]
    assert len(commits) == 3
    assert "PREPARE careloop_" in commits[0]
    assert all("PREPARE" not in sql and "EXECUTE careloop_" in sql for sql in commits[1:]), commits
    with store.transaction() as session:
        payloads = session.execute(text("SELECT payload FROM kit_outbox ORDER BY id")).scalars().all()
    assert [f'"n":{number}' in payload for number, payload in enumerate(payloads)] == [True, True, True]


def test_a_commit_that_failed_after_preparing_leaves_later_commits_in_plain_text(store):
    taken = str(uuid.uuid4())
    with store.transaction() as session:  # a row the next commit's insert clashes with, written without preparing
        session.execute(text("INSERT INTO kit_outbox (event_id, event_type, payload, headers, created_at, attempts) "
                             "VALUES (:event_id, 'x', '{}', '{}', now(), 0)"), {"event_id": taken})
    row = {"event_id": taken, "event_type": "prepared_tested", "payload": "{}", "headers": "{}", "created_at": utcnow()}
    with pytest.raises(IntegrityError), store.transaction() as session:
        at_commit(session, _INSERT_EVENT, row)
    for _ in range(2):
        with store.transaction() as session:
            at_commit(session, _INSERT_EVENT, {**row, "event_id": str(uuid.uuid4())})
    commits = [sql for sql in store.sent if sql.endswith("COMMIT")]
    assert "PREPARE" in commits[0]
    assert all("PREPARE" not in sql and "EXECUTE" not in sql for sql in commits[1:]), commits
    with store.transaction() as session:
        assert session.execute(text("SELECT count(*) FROM kit_outbox")).scalar() == 3


_TWO = prepared(text("SELECT CAST(:a AS integer) + 1 AS x; SELECT CAST(:b AS integer) * CAST(:a AS integer) AS y"))


def test_statements_sent_together_are_prepared_each_and_executed_in_turn(store):
    for a in (2, 3):
        with store.transaction() as session:
            assert session.execute(_TWO, {"a": a, "b": 10}).scalar() == 10 * a  # the last statement answers
    first, second = (sql for sql in store.sent if "CAST" in sql or "EXECUTE" in sql)
    assert first.count("PREPARE careloop_") == 2 and first.count(";EXECUTE careloop_") == 2
    assert second.startswith("BEGIN;EXECUTE careloop_") and second.count("EXECUTE") == 2 and "PREPARE" not in second


def test_a_prepared_statement_planned_on_a_small_table_is_planned_again_as_the_table_grows(store):
    """The outbox relay's mark (``event_id = ANY(:event_ids)``), prepared on a new database: PostgreSQL's generic plan,
    made at its sixth run while ``kit_outbox`` is a page, is a sequential scan. Without a new ``ANALYZE`` (autovacuum off
    for the table here) PostgreSQL keeps that plan; the kit prepares the statement again after ``REPLAN_AFTER`` runs,
    and the plans then made read the event id's unique index."""
    name = _prepared_form(_MARK_SENT.plain)[0]

    def mark(times: int) -> None:
        for number in range(times):
            with store.transaction() as session:
                at_commit(session, _MARK_SENT, {"event_ids": [str(uuid.UUID(int=number)), str(uuid.UUID(int=number + 1))],
                                                "sent_at": utcnow()})

    def plan() -> str:
        with store.transaction() as session:
            return "\n".join(session.execute(text(f"EXPLAIN EXECUTE {name}(now(), ARRAY['a', 'b']::varchar[])")).scalars())

    with store.transaction() as session:
        session.execute(text("ALTER TABLE kit_outbox SET (autovacuum_enabled = false)"))
        for number in range(3):
            write_event(session, "prepared_tested", {"n": number})
    mark(10)
    small = plan()
    assert "Seq Scan on kit_outbox" in small and "$2" in small, small  # the generic plan, made on a small table
    with store.transaction() as session:
        session.execute(text("INSERT INTO kit_outbox (event_id, event_type, payload, headers, created_at, attempts) "
                             "SELECT gen_random_uuid()::text, 'grown', repeat('x', 200), '{}', now(), 0 "
                             "FROM generate_series(1, 20000)"))
    assert "Seq Scan on kit_outbox" in plan()  # still: nothing told PostgreSQL the table grew
    mark(REPLAN_AFTER)
    grown = plan()
    assert "Seq Scan" not in grown and "uq_kit_outbox_event_id" in grown, grown  # (a custom or a generic plan: both cheap)
    commits = [sql for sql in store.sent if sql.endswith("COMMIT") and "kit_outbox" in sql or "DEALLOCATE" in sql]
    assert sum(f"DEALLOCATE {name};PREPARE {name} AS" in sql for sql in commits) == 1, commits


# -- an event handler's inbox statements (kit.inbox): every handler run sends them ------------------------------------

_CHECK = _prepared_form(inbox.CHECK_SQL)[0]
_ROW = _prepared_form(inbox._RECORD.plain)[0]
_ONE = text("SELECT 1")


def _handle(store: Any, event_id: str, first: Any = _ONE, params: dict | None = None) -> str:
    """What the kit does around a handler on PostgreSQL: the check with its first statement, the row with its commit.
    The handler's first query, as sent."""
    sent = len(store.sent)
    try:
        with store.transaction() as session:
            inbox.check_first(session, "prepared_test.on_event", event_id)
            session.execute(first, params or {})
            inbox.record(session, inbox.Entry("prepared_test.on_event", event_id, utcnow()))
    finally:
        store.first = store.sent[sent]
    return store.first


def test_a_handlers_inbox_check_and_row_are_prepared_with_their_first_run_and_then_only_executed(store):
    for number in range(3):
        _handle(store, f"event-{number}")
    firsts = [sql for sql in store.sent if "kit_inbox_unseen" in sql or f"EXECUTE {_CHECK}(" in sql]
    commits = [sql for sql in store.sent if sql.endswith("COMMIT")]
    assert len(firsts) == len(commits) == 3, store.sent
    assert firsts[0].startswith(f"BEGIN;PREPARE {_CHECK} AS SELECT kit_inbox_unseen($1, $2);EXECUTE {_CHECK}(")
    assert all(sql.startswith(f"BEGIN;EXECUTE {_CHECK}(") and "PREPARE" not in sql for sql in firsts[1:]), firsts
    assert f"PREPARE {_ROW} AS INSERT INTO kit_inbox" in commits[0]
    assert all(f"EXECUTE {_ROW}(" in sql and "PREPARE" not in sql for sql in commits[1:]), commits
    with store.transaction() as session:
        assert {_CHECK, _ROW} <= _prepared_names(session)
        handled = session.execute(text("SELECT event_id FROM kit_inbox WHERE consumer = 'prepared_test.on_event' "
                                       "ORDER BY event_id")).scalars().all()
    assert handled == ["event-0", "event-1", "event-2"]


def test_a_redelivered_event_leaves_the_check_prepared_and_the_refused_statement_to_be_prepared_later(store):
    """The check refuses the event from its ``EXECUTE``: its ``PREPARE`` took, and the handler's own statement, after it
    in the query, never ran — so its ``PREPARE`` goes with its next run (not plain text for the connection's life)."""
    _handle(store, "event-a")
    with pytest.raises(inbox.AlreadyHandledError):
        _handle(store, "event-a", _DIVIDE, {"divisor": 4})
    refused = store.first
    again = _handle(store, "event-b", _DIVIDE, {"divisor": 5})
    then = _handle(store, "event-c", _DIVIDE, {"divisor": 10})
    assert refused.startswith(f"BEGIN;EXECUTE {_CHECK}(") and "PREPARE careloop_" in refused, refused
    assert again.startswith(f"BEGIN;EXECUTE {_CHECK}(") and again.count("PREPARE careloop_") == 1, again
    assert then.startswith(f"BEGIN;EXECUTE {_CHECK}(") and "PREPARE" not in then and "100 /" not in then, then


def test_the_check_sent_alone_before_a_peer_call_is_the_same_prepared_statement(store):
    for number in range(2):
        with store.transaction() as session:
            inbox.check_first(session, "prepared_test.calls_a_peer", f"event-{number}")
            inbox.check_now(session)  # kit.peers: before the call leaves the process
    alone = [sql for sql in store.sent if "kit_inbox_unseen" in sql or f"EXECUTE {_CHECK}(" in sql]
    assert alone[0].startswith(f"BEGIN;PREPARE {_CHECK} AS") and alone[1].startswith(f"BEGIN;EXECUTE {_CHECK}("), alone
