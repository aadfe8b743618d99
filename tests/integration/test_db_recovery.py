"""A service's PostgreSQL connections dropped under it (a database restart, a firewall): the kit recovers.

The pool does not ping every checkout (a round trip per command); it pings a connection that sat idle,
and a connection found dead while in use invalidates the whole pool.
"""

from __future__ import annotations

import psycopg2
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from services.kit.db import Store
from tests.harness import PG_ADMIN_URL


def drop_connections(database: str) -> int:
    """Terminate every server process connected to ``database`` (as a database restart would)."""
    admin = psycopg2.connect(PG_ADMIN_URL)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                           "WHERE datname = %s AND pid <> pg_backend_pid()", (database,))
            return cursor.fetchone()[0]
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
