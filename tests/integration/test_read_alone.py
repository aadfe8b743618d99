"""The kit's read path (``self.db.read()``, ``kit.db.Store.reading``): a member's view costs one statement on
PostgreSQL — no ``BEGIN``, no ``COMMIT`` — and on SQLite it is answered while another worker of the process
holds the writer's lock, where a read through the Session would wait for it."""

from __future__ import annotations

import eventlet
import pytest

from services.kit.db import Store
from services.members.service import MembersService
from tests.integration.records_support import enrol
from tests.integration.test_round_trips import Trips


@pytest.mark.backends("postgresql")
def test_a_member_s_view_is_one_statement_and_nothing_else_on_postgresql(start_service, rpc):
    members = start_service(MembersService, "postgresql")
    proxy = rpc()
    member_id = enrol(proxy, 1)
    trips = Trips(members)
    try:
        assert proxy.members.get_member(member_id)["id"] == member_id
    finally:
        trips.close()
    (read,) = [queries for queries in trips.transactions
               if any(member_id in str(parameters) for _, parameters in queries)]
    assert len(read) == 1, read  # the select alone: no COMMIT sent after it
    assert not read[0][0].startswith("BEGIN"), read[0][0]


@pytest.mark.backends("sqlite")
def test_a_member_s_view_does_not_wait_for_the_writer_on_sqlite(start_service, rpc):
    members = start_service(MembersService, "sqlite")
    proxy = rpc()
    member_id = enrol(proxy, 2)
    store = Store(members.database_url)
    writer = store.open_session()  # the process's one writer: the gate, then SQLite's write lock
    try:
        writer.connection().exec_driver_sql("UPDATE members SET updated_at = updated_at")
        reply = proxy.members.get_member.call_async(member_id)
        with eventlet.Timeout(5, AssertionError("the read waited for the writer")):
            assert reply.result()["id"] == member_id
        writer.rollback()
    finally:
        store.close_session(writer)
        store.dispose()
