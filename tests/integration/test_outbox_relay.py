"""The outbox relay publishes a batch, waits for the broker's confirms once, and only then marks it sent.

- a backlog goes out in order, each event once, and every row is marked sent after its confirm;
- a batch the broker does not confirm (here: confirms that never arrive) is not marked sent, and the
  next attempt publishes it;
- what a commit of the same process hands over is published from memory and marked in one round trip; what a
  read published already is not published again from memory; a handed batch the broker did not confirm is
  read again; another writer's fresh rows are left to it for the grace, unless the relay was told of them.
"""

from __future__ import annotations

import json
import uuid

import pytest
from kombu import Connection, Exchange, Queue

from services.kit.db import Database
from services.kit.outbox import Outbox, write_event
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


def confirms_never_arrive(outbox: Outbox) -> None:
    outbox.publisher.confirm_timeout = 0.5
    outbox.publisher._on_ack = lambda tag, multiple: None  # the broker's confirms are dropped


def confirms_arrive_again(outbox: Outbox) -> None:
    del outbox.publisher._on_ack
    outbox.publisher.confirm_timeout = 30


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

    confirms_never_arrive(outbox)
    with pytest.raises(TimeoutError):
        outbox.relay_once()
    assert unsent(url) == 3

    confirms_arrive_again(outbox)  # the batch is published and marked sent
    assert outbox.relay_once() == 3
    assert unsent(url) == 0
    payloads = [json.loads(row[0])["event_id"] for row in query(url, "SELECT payload FROM kit_outbox ORDER BY id")]
    assert payloads == ids
    # published twice (the unconfirmed attempt went out too): consumers dedupe by event id
    assert [event["event_id"] for event in listening()][-3:] == ids


@pytest.mark.backends("postgresql")
def test_a_batch_costs_two_round_trips_and_goes_out_as_it_was_stored(start_service, databases, listening):
    """``BEGIN;SELECT … FOR UPDATE SKIP LOCKED`` (as a statement prepared once per connection), then ``UPDATE … WHERE event_id = ANY(…);COMMIT`` once confirmed; the
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


def relay_of(container) -> tuple[Outbox, Database]:
    (outbox,) = [d for d in container.dependencies if isinstance(d, Outbox)]
    (database,) = [d for d in container.dependencies if isinstance(d, Database)]
    return outbox, database


def commit_events(database: Database, count: int) -> list[str]:
    """``count`` events written by one transaction of the service's own store (so handed to its relay)."""
    with database.store.transaction() as session:
        return [write_event(session, "member_updated", {"member_id": str(uuid.UUID(int=n)), "changed": ["tier"]})
                for n in range(count)]


def quiet_relay(start_service, url: str, **config):
    """The members service with its relay stopped (driven by the test) and its first read done."""
    container = start_service(MembersService, database_url=url, NIGHTLY_AT="off", OUTBOX_RELAY=False,
                              OUTBOX_POLL_SECONDS=60, **config)
    outbox, database = relay_of(container)
    assert outbox.relay_once() == 0  # the start-up read: nothing left over
    return outbox, database


@pytest.mark.backends("postgresql")
def test_what_a_commit_hands_over_goes_out_from_memory_and_is_marked_in_one_round_trip(start_service, databases,
                                                                                       listening):
    from sqlalchemy import event

    url = databases.fresh("postgresql", "members")
    outbox, database = quiet_relay(start_service, url)
    ids = commit_events(database, 3)
    sent: list[str] = []

    def executed(_conn, _cursor, statement, *_args) -> None:
        sent.append(statement)

    event.listen(database.store.engine, "before_cursor_execute", executed)
    try:
        assert outbox.relay_once() == 3
    finally:
        event.remove(database.store.engine, "before_cursor_execute", executed)
    assert len(sent) == 1, sent  # no read: the mark by event id, with its COMMIT
    # prepared with its first run on the connection, executed after (kit.db.prepared)
    assert "UPDATE kit_outbox SET sent_at" in sent[0] or sent[0].startswith("BEGIN;EXECUTE careloop_"), sent[0]
    assert "SELECT" not in sent[0] and sent[0].startswith("BEGIN;") and sent[0].endswith(";COMMIT"), sent[0]
    assert [event["event_id"] for event in listening()] == ids
    assert unsent(url) == 0
    assert query(url, "SELECT min(attempts), max(attempts) FROM kit_outbox")[0] == (1, 1)


def test_an_event_a_read_published_is_not_published_again_from_memory(start_service, databases, backend, listening):
    url = databases.fresh(backend, "members")
    container = start_service(MembersService, database_url=url, NIGHTLY_AT="off", OUTBOX_RELAY=False,
                              OUTBOX_POLL_SECONDS=60)
    outbox, database = relay_of(container)
    ids = commit_events(database, 2)  # handed over, and committed: the first read finds them too
    assert outbox.relay_once() == 2  # the start-up read
    assert outbox.relay_once() == 0  # the hand-over of the same two: dropped
    assert [event["event_id"] for event in listening()] == ids
    assert unsent(url) == 0


def test_a_handed_batch_the_broker_does_not_confirm_is_read_again(start_service, databases, backend, listening):
    url = databases.fresh(backend, "members")
    outbox, database = quiet_relay(start_service, url)
    ids = commit_events(database, 2)
    confirms_never_arrive(outbox)
    with pytest.raises(TimeoutError):
        outbox.relay_once()
    assert unsent(url) == 2

    confirms_arrive_again(outbox)
    assert outbox.relay_once() == 2  # read at once, young as the rows are: they are the relay's own
    assert unsent(url) == 0
    assert [event["event_id"] for event in listening()][-2:] == ids


def test_another_writers_fresh_rows_are_left_to_it_unless_the_relay_is_told(start_service, databases, backend,
                                                                            listening):
    url = databases.fresh(backend, "members")
    outbox, database = quiet_relay(start_service, url, OUTBOX_HANDOVER_GRACE_SECONDS=600)
    write_backlog(url, 3)  # another process's commit (another store): nothing handed over, nobody told
    assert outbox.relay_once() == 0  # younger than the grace: its writer's relay publishes them
    assert unsent(url) == 3

    with database.store.transaction() as session:  # a batch job of this process: written, not handed over
        events = BatchEvents(session, EVENTS)
        events("member_updated", {"member_id": uuid.UUID(int=7), "changed": ["tier"]})
        (mine,) = events.flush()
    assert outbox.relay_once() == 4  # told of a write it was not handed: read at once, the youngest rows too
    assert unsent(url) == 0
    assert [event["event_id"] for event in listening()][-1] == mine
