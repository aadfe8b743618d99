"""The outbox relay publishes a batch, waits for the broker's confirms once, and only then marks it sent.

- a backlog goes out in order, each event once, and every row is marked sent after its confirm;
- a batch the broker does not confirm (here: confirms that never arrive) is not marked sent, and the
  next attempt publishes it.
"""

from __future__ import annotations

import json
import uuid

import pytest
from kombu import Connection, Exchange, Queue

from services.kit.outbox import Outbox
from services.kit.outbox_batch import BatchEvents
from services.members.events import EVENTS
from services.members.service import MembersService
from tests.harness import query, store_for, wait_for

BACKLOG = 250  # more than one relay batch (OUTBOX_BATCH, 200)


def write_backlog(url: str, count: int) -> list[str]:
    store = store_for(url)
    try:
        with store.transaction() as session:
            events = BatchEvents(session, EVENTS)
            for n in range(count):
                events("member_updated", {"member_id": uuid.UUID(int=n), "changed": ["tier"]})
            return events.flush()
    finally:
        store.dispose()


@pytest.fixture
def listening(amqp_uri):
    """A queue bound to the members' event exchange: what the relay publishes, in order."""
    with Connection(amqp_uri) as connection:
        exchange = Exchange("members.events", type="topic", durable=True)
        queue = Queue("outbox_relay_test", exchange=exchange, routing_key="#", auto_delete=False)
        queue(connection).declare()
        received: list[dict] = []

        def drain() -> list[dict]:
            with connection.SimpleQueue(queue) as simple:
                while True:
                    try:
                        message = simple.get(timeout=0.2)
                    except simple.Empty:
                        return received
                    received.append(message.payload)
                    message.ack()

        yield drain
        queue(connection).delete()


def unsent(url: str) -> int:
    return query(url, "SELECT count(*) FROM kit_outbox WHERE sent_at IS NULL")[0][0]


def test_a_backlog_is_published_in_order_once_and_marked_sent(start_service, databases, backend, listening):
    url = databases.fresh(backend, "members")
    ids = write_backlog(url, BACKLOG)
    start_service(MembersService, database_url=url, NIGHTLY_AT="off")
    wait_for(lambda: len(listening()) >= BACKLOG, timeout=30, message="the backlog")
    assert [event["event_id"] for event in listening()] == ids
    wait_for(lambda: unsent(url) == 0, message="rows marked sent")
    assert query(url, "SELECT min(attempts), max(attempts) FROM kit_outbox")[0] == (1, 1)


def test_a_batch_without_confirms_is_not_marked_sent_and_goes_out_next_time(start_service, databases, backend,
                                                                           listening):
    url = databases.fresh(backend, "members")
    container = start_service(MembersService, database_url=url, NIGHTLY_AT="off", OUTBOX_RELAY=False)
    (outbox,) = [d for d in container.dependencies if isinstance(d, Outbox)]
    ids = write_backlog(url, 3)

    outbox.publisher.confirm_timeout = 0.5
    outbox.publisher._on_ack = lambda tag, multiple: None  # the broker's confirms never arrive
    with pytest.raises(TimeoutError):
        outbox.relay_once()
    assert unsent(url) == 3

    del outbox.publisher._on_ack  # confirms arrive again: the batch is published and marked sent
    outbox.publisher.confirm_timeout = 30
    assert outbox.relay_once() == 3
    assert unsent(url) == 0
    payloads = [json.loads(row[0])["event_id"] for row in query(url, "SELECT payload FROM kit_outbox ORDER BY id")]
    assert payloads == ids
    # published twice (the unconfirmed attempt went out too): consumers dedupe by event id
    assert [event["event_id"] for event in listening()][-3:] == ids


@pytest.mark.backends("postgresql")
def test_a_batch_costs_two_round_trips_and_goes_out_as_it_was_stored(start_service, databases, listening):
    """``BEGIN;SELECT … FOR UPDATE SKIP LOCKED`` (as a statement prepared once per connection), then ``UPDATE … WHERE id = ANY(…);COMMIT`` once confirmed; the
    stored JSON is the message's body, not decoded and encoded again."""
    from sqlalchemy import event

    from services.kit.db import ENDED_ALONE, Database

    url = databases.fresh("postgresql", "members")
    container = start_service(MembersService, database_url=url, NIGHTLY_AT="off", OUTBOX_RELAY=False)
    (outbox,) = [d for d in container.dependencies if isinstance(d, Outbox)]
    (database,) = [d for d in container.dependencies if isinstance(d, Database)]
    ids = write_backlog(url, 3)
    sent: list[str] = []
    alone: list[bool] = []

    def executed(_conn, _cursor, statement, *_args) -> None:
        sent.append(statement)

    def committed(connection) -> None:
        alone.append(connection.connection.info.get(ENDED_ALONE))

    event.listen(database.store.engine, "before_cursor_execute", executed)
    event.listen(database.store.engine, "commit", committed)
    try:
        assert outbox.relay_once() == 3
    finally:
        event.remove(database.store.engine, "before_cursor_execute", executed)
        event.remove(database.store.engine, "commit", committed)
    assert len(sent) == 2, sent
    # the read, prepared on the connection with its first run (then only executed: kit.db.prepared)
    assert sent[0].startswith("BEGIN;") and ("SKIP LOCKED" in sent[0] or "EXECUTE careloop_" in sent[0]), sent[0]
    # the mark (prepared on the connection with its first run, then executed: kit.db.prepared), then the COMMIT
    assert "UPDATE kit_outbox SET sent_at" in sent[1] or sent[1].startswith("EXECUTE careloop_"), sent[1]
    assert sent[1].endswith(";COMMIT")
    assert alone == [False]  # the COMMIT went with the UPDATE
    assert unsent(url) == 0
    stored = {row[0]: json.loads(row[1]) for row in query(url, "SELECT event_id, payload FROM kit_outbox")}
    assert [event["event_id"] for event in listening()] == ids
    assert [stored[event["event_id"]] for event in listening()] == listening()
