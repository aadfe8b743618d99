"""The kit's event guarantees with real services, broker and databases.

- an event committed but not yet published when its process is killed (SIGKILL of a real ``nameko run``
  process, its relay held between the commit and the publish) is published when it comes back, once;
- the same event delivered twice has one effect (inbox);
- a failing handler is retried with backoff, then parked; the operator lists and replays it;
- a payload no retry can fix (Invalid) is parked at once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from nameko.standalone.events import event_dispatcher

from services.kit import Database, Invalid, Service, event_handler
from services.kit.clock import utcnow
from services.members.service import MembersService
from services.notifications.models import Delivery
from services.notifications.service import NotificationsService
from tests.harness import REPO, events_handled, query, queued_for, scalar, service_config, wait_for

MEMBER = {"full_name": "Zhou Min", "phone": "13600136000", "birth_date": "1979-03-04", "home_branch": "HZ01"}

FAILURES: dict[str, int] = {}
"""member id -> how many more times the Tally handler fails for it ("invalid" to refuse it outright)."""


class Tally(Service):
    """A consumer whose effect is not idempotent by itself (one row a call): only the inbox dedupes."""

    name = "tally"
    db = Database()

    @event_handler("members", "member_enrolled")
    def count(self, event: dict) -> None:
        plan = FAILURES.get(event["member_id"], 0)
        if plan == "invalid":
            raise Invalid("This event cannot be applied.")
        if plan > 0:
            FAILURES[event["member_id"]] = plan - 1
            raise RuntimeError("database briefly away")
        now = utcnow()
        self.db.session.add(Delivery(id=uuid.uuid4(), member_id=uuid.UUID(event["member_id"]), journey="tally",
                                     dedupe_key=str(uuid.uuid4()), state="queued", due_at=now, created_at=now,
                                     updated_at=now, attempts=0))


def count(url: str, sql: str, **params: object) -> int:
    return scalar(url, sql, **params)


def tallied(url: str, member_id: str) -> int:
    return count(url, "SELECT count(*) FROM deliveries WHERE journey = 'tally' AND member_id = :m",
                 m=uuid.UUID(member_id).hex if "sqlite" in url else member_id)


@pytest.fixture
def tally(start_service, databases, backend):
    return start_service(Tally, database_url=databases.fresh(backend, "notifications"))


def consumers_of(amqp_uri: str, queue: str) -> int:
    vhost = amqp_uri.rsplit("/", 1)[1]
    out = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", vhost, "--no-table-headers", "name",
                          "consumers"], check=True, capture_output=True, text=True, timeout=60).stdout
    return sum(int(line.rsplit("\t", 1)[1]) for line in out.splitlines() if line.split("\t", 1)[0] == queue)


@pytest.fixture
def members_process(amqp_uri: str, tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen]]:
    """``members_process(url, **env)``: members as its own ``nameko run`` process (as deployed), serving RPC."""
    started: list[subprocess.Popen] = []

    def start(url: str, **env: str) -> subprocess.Popen:
        log = open(tmp_path / f"members-{len(started)}.log", "wb")
        process = subprocess.Popen(
            [str(REPO / ".venv" / "bin" / "nameko"), "run", "--config", "deploy/config.yml",
             "services.members.service:MembersService"],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, "AMQP_URI": amqp_uri, "DATABASE_URL": url, "SERVICE_NAME": "members",
                 "METRICS_PORT": "0", "LOG_LEVEL": "INFO", **env})
        log.close()
        started.append(process)
        wait_for(lambda: process.poll() is not None or consumers_of(amqp_uri, "rpc-members") > 0, timeout=60,
                 interval=0.2, message="the members process consuming its RPC queue")
        assert process.poll() is None, (tmp_path / f"members-{len(started) - 1}.log").read_text()
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


@pytest.mark.backends("postgresql")  # on SQLite the paused relay holds the file's write lock: nobody could look
def test_event_committed_but_unpublished_when_the_process_is_killed_is_published_once_on_restart(
        start_service, rpc, backend, databases, amqp_uri, members_process, tmp_path):
    url = databases.fresh(backend, "members")
    paused = tmp_path / "relay-paused"
    # a real members process whose relay stops between the commit and the publish, and waits there
    crashing = members_process(url, CARELOOP_OUTBOX_PAUSE_FILE=str(paused))
    notifications = start_service(NotificationsService, backend)
    proxy = rpc()
    member = proxy.members.enrol(MEMBER)
    wait_for(paused.exists, timeout=15, message="the relay paused with the event locked, before publishing")
    assert paused.read_text().split() == [str(crashing.pid), "1"]
    assert count(url, "SELECT count(*) FROM kit_outbox WHERE sent_at IS NULL") == 1
    assert queued_for(amqp_uri, "notifications") == 0  # nothing published, nothing on its way

    os.kill(crashing.pid, signal.SIGKILL)  # the process dies with the event committed but unpublished
    assert crashing.wait(timeout=15) == -signal.SIGKILL
    assert proxy.notifications.deliveries(member["id"])["items"] == []

    members_process(url)  # the restart: its relay publishes what the dead one had not
    wait_for(lambda: proxy.notifications.deliveries(member["id"])["items"], message="welcome delivery")
    # the end of it: the relay has marked the row sent (the broker confirmed it) and nothing more is on its way
    wait_for(lambda: count(url, "SELECT count(*) FROM kit_outbox WHERE sent_at IS NULL") == 0,
             message="the outbox row marked sent")
    wait_for(lambda: queued_for(amqp_uri, "notifications") == 0, message="notifications' queues drained")
    assert len(proxy.notifications.deliveries(member["id"])["items"]) == 1
    assert count(notifications.database_url, "SELECT count(*) FROM kit_inbox") == 1


def test_the_same_event_delivered_twice_has_one_effect(start_service, rpc, backend, tally, amqp_uri):
    members = start_service(MembersService, backend)
    member = rpc().members.enrol(MEMBER)
    wait_for(lambda: tallied(tally.database_url, member["id"]) == 1, message="first delivery")
    (payload,) = [json.loads(row[0]) for row in query(
        members.database_url, "SELECT payload FROM kit_outbox WHERE event_type = 'member_enrolled'")]
    dispatch = event_dispatcher(service_config(amqp_uri))
    duplicates = events_handled("tally", "count", "duplicate")
    for _ in range(2):  # a relay that crashed after the broker's confirm publishes again
        dispatch("members", "member_enrolled", payload)
    wait_for(lambda: events_handled("tally", "count", "duplicate") == duplicates + 2,
             message="both copies acknowledged as duplicates")
    assert count(tally.database_url, "SELECT count(*) FROM kit_inbox") == 1
    assert tallied(tally.database_url, member["id"]) == 1


def test_failing_handler_is_retried_then_succeeds_once(start_service, rpc, backend, tally):
    start_service(MembersService, backend)
    proxy = rpc()
    member_id = str(uuid.uuid4())
    FAILURES[member_id] = 2
    _publish_enrolled(tally, member_id)
    wait_for(lambda: tallied(tally.database_url, member_id) == 1, message="applied after retries")
    assert FAILURES[member_id] == 0
    assert proxy.tally.dead_letters() == []


def test_handler_that_keeps_failing_is_parked_and_can_be_replayed(start_service, rpc, backend, tally):
    proxy = rpc()
    member_id = str(uuid.uuid4())
    FAILURES[member_id] = 1000
    event_id = _publish_enrolled(tally, member_id)
    parked = wait_for(lambda: proxy.tally.dead_letters(), message="a dead letter")
    assert parked[0]["event_id"] == event_id
    assert parked[0]["attempts"] == 4  # the first try and three retries (EVENT_RETRY_DELAYS in tests)
    assert "database briefly away" in parked[0]["error"]
    assert proxy.tally.dead_letters() == parked  # listing does not consume
    assert tallied(tally.database_url, member_id) == 0

    FAILURES[member_id] = 0  # the cause is fixed; the operator replays
    assert proxy.tally.replay_dead_letters() == {"replayed": 1}
    wait_for(lambda: tallied(tally.database_url, member_id) == 1, message="applied after replay")
    assert proxy.tally.dead_letters() == []


def test_invalid_event_is_parked_without_retrying(start_service, rpc, backend, tally):
    proxy = rpc()
    member_id = str(uuid.uuid4())
    FAILURES[member_id] = "invalid"
    _publish_enrolled(tally, member_id)
    parked = wait_for(lambda: proxy.tally.dead_letters(), message="a dead letter")
    assert parked[0]["attempts"] == 1
    assert "cannot be applied" in parked[0]["error"]


def _publish_enrolled(container, member_id: str) -> str:
    event_id = str(uuid.uuid4())
    dispatch = event_dispatcher({"AMQP_URI": container.config["AMQP_URI"]})
    dispatch("members", "member_enrolled", {"event_id": event_id, "occurred_at": "2026-11-23T00:00:00Z",
                                            "member_id": member_id, "home_branch": "SH01"})
    return event_id
