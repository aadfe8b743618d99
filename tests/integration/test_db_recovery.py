"""A service's PostgreSQL connections dropped under it (a database restart, a firewall): the kit recovers.

The pool does not ping every checkout (a round trip per command); it pings a connection that sat idle,
and a connection found dead while in use invalidates the whole pool.
"""

from __future__ import annotations

import time

import psycopg2
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from services.kit.db import Store, database_unavailable
from tests.harness import PG_ADMIN_URL

OTHERS = "FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"


def drop_connections(database: str) -> int:
    """Terminate every server process connected to ``database`` (as a database restart would), and wait until
    they have gone (a terminated process may still answer for a moment)."""
    admin = psycopg2.connect(PG_ADMIN_URL)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"SELECT count(pg_terminate_backend(pid)) {OTHERS}", (database,))
            dropped = cursor.fetchone()[0]
            deadline = time.monotonic() + 10
            while True:
                cursor.execute(f"SELECT count(*) {OTHERS}", (database,))
                if cursor.fetchone()[0] == 0:
                    return dropped
                assert time.monotonic() < deadline, "terminated connections still there after 10 s"
                time.sleep(0.01)
    finally:
        admin.close()


def read_one(store: Store) -> int:
    with store.transaction() as session:
        return session.execute(text("SELECT 1")).scalar_one()


@pytest.fixture
def url(databases):
    return databases.fresh("postgresql", "notifications")


def test_an_idle_connection_dropped_under_the_pool_is_replaced_before_use(url):
    store = Store(url, pool_size=2, ping_after_idle=0)
    try:
        assert read_one(store) == 1
        assert drop_connections(store.engine.url.database) >= 1
        assert read_one(store) == 1  # pinged on checkout, found dead, replaced: no error
    finally:
        store.dispose()


def test_a_busy_connection_dropped_fails_one_call_then_the_pool_recovers(url):
    store = Store(url, pool_size=2, ping_after_idle=3600)
    try:
        assert read_one(store) == 1
        assert drop_connections(store.engine.url.database) >= 1
        with pytest.raises(DBAPIError) as raised:
            read_one(store)
        assert raised.value.connection_invalidated
        assert read_one(store) == 1
        assert read_one(store) == 1
    finally:
        store.dispose()


def test_a_connection_dropped_at_the_kits_own_commit_fails_as_unavailable_and_writes_nothing(url):
    """The kit sends a transaction's ``COMMIT`` itself when nothing was left to go with it (``kit.db``). A link
    lost just before it is a lost connection like any statement's: SQLAlchemy's error, the pool's connections
    replaced, ``Unavailable`` to the caller; never psycopg2's bare error, which nothing mapped (issue 17: a 500
    at the gateway). What the transaction wrote is not there."""
    store = Store(url, pool_size=2, ping_after_idle=3600)
    try:
        with store.transaction() as session:
            session.execute(text("CREATE TABLE link_marks (id integer)"))
        with pytest.raises(DBAPIError) as raised, store.transaction() as session:
            session.execute(text("INSERT INTO link_marks VALUES (1)"))
            assert drop_connections(store.engine.url.database) >= 1
        assert raised.value.connection_invalidated and database_unavailable(raised.value)
        with store.transaction() as session:
            assert session.execute(text("SELECT count(*) FROM link_marks")).scalar_one() == 0
    finally:
        store.dispose()
