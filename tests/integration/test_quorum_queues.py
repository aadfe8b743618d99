"""QUEUE_TYPE=quorum on the machine's RabbitMQ, in a vhost of this module's own: every queue the kit and
nameko declare for a service is a quorum queue with its delivery limit and dead-letter settings (the RPC
reply queue stays classic), RPC and events flow, the retry-with-delay path (TTL queues) brings a failing
event back until it succeeds, a handler that keeps failing is parked and replayed, and the topology
declared up front (services.kit.topology) is the one the services then declare (no argument conflict)."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from nameko.standalone.events import event_dispatcher

from services.kit import Database, Service, event_handler, rpc
from services.kit.clock import utcnow
from services.kit.topology import declare
from services.members.events import EVENTS, MemberEnrolled
from services.members.service import MembersService
from services.notifications.models import Delivery
from tests.harness import RABBIT_HOST, RUN_ID, scalar, service_config, wait_for

FAILURES: dict[str, int] = {}
QUORUM = {"QUEUE_TYPE": "quorum", "QUEUE_DELIVERY_LIMIT": 5}


class QuorumTally(Service):
    """Counts member_enrolled events; fails for a member as often as FAILURES says."""

    name = "qtally"
    db = Database()

    @rpc
    def echo(self, value: str) -> str:
        return value

    @event_handler(MemberEnrolled)
    def count(self, event: dict) -> None:
        member_id = str(event["member_id"])
        if FAILURES.get(member_id, 0) > 0:
            FAILURES[member_id] -= 1
            raise RuntimeError("database briefly away")
        now = utcnow()
        self.db.session.add(Delivery(id=uuid.uuid4(), member_id=uuid.UUID(member_id), journey="qtally",
                                     dedupe_key=str(uuid.uuid4()), state="queued", due_at=now, created_at=now,
                                     updated_at=now, attempts=0))


def ctl(*args: str) -> str:
    return subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True, timeout=60).stdout


@pytest.fixture(scope="module")
def amqp_uri() -> Iterator[str]:
    """A vhost of this module's own (the session's has classic queues of the same names)."""
    vhost = f"careloop-quorum-{RUN_ID}"
    ctl("add_vhost", vhost)
    ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    yield f"pyamqp://guest:guest@{RABBIT_HOST}/{vhost}"
    ctl("delete_vhost", vhost)


def queues(amqp_uri: str) -> dict[str, tuple[str, dict[str, object]]]:
    """name -> (type, arguments) of every queue in the vhost."""
    vhost = amqp_uri.rsplit("/", 1)[1]
    out = ctl("list_queues", "-p", vhost, "--formatter", "json", "name", "type", "arguments")
    found = {}
    for queue in json.loads(out):
        arguments = queue["arguments"]
        if isinstance(arguments, list):  # rabbitmqctl 3.10: [[key, type, value], ...], or [] when none
            arguments = {entry[0]: entry[-1] for entry in arguments}
        found[queue["name"]] = (queue["type"], arguments)
    return found


def enrolled(member_id: str) -> dict:
    """A member_enrolled payload from its contract's sample, checked by the producer's EVENTS.wire."""
    body = EVENTS.wire(MemberEnrolled.event_type, {**MemberEnrolled.sample, "member_id": uuid.UUID(member_id)})
    return {**body, "event_id": str(uuid.uuid4())}  # the outbox's envelope


def tallied(url: str, member_id: str) -> int:
    return scalar(url, "SELECT count(*) FROM deliveries WHERE journey = 'qtally' AND member_id = :m", m=member_id)


@pytest.mark.backends("postgresql")
def test_every_queue_is_quorum_and_retries_dead_letters_and_rpc_work(start_service, rpc, databases, backend,
                                                                    amqp_uri):
    declared = declare(amqp_uri, [MembersService, QuorumTally], retry_delays=[0.05, 0.1, 0.2], config=QUORUM)
    tally = start_service(QuorumTally, database_url=databases.fresh(backend, "notifications"), **QUORUM)
    proxy = rpc()
    assert proxy.qtally.echo("ping") == "ping"

    found = queues(amqp_uri)
    handler_queue = "evt-members-member_enrolled--qtally.count"
    assert handler_queue in declared
    assert found[handler_queue] == ("quorum", {
        "x-queue-type": "quorum", "x-delivery-limit": 5, "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "careloop.dead.qtally", "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish"})
    assert found["rpc-qtally"] == ("quorum", {"x-queue-type": "quorum", "x-delivery-limit": 5})
    assert found["careloop.dead.qtally"] == ("quorum", {"x-queue-type": "quorum"})
    assert found["careloop.retry.100ms"] == ("quorum", {
        "x-queue-type": "quorum", "x-message-ttl": 100, "x-dead-letter-exchange": "",
        "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"})
    replies = [name for name in found if name.startswith("rpc.reply")]
    assert replies and all(found[name][0] == "classic" for name in replies)

    dispatch = event_dispatcher(service_config(amqp_uri))
    retried = str(uuid.uuid4())
    FAILURES[retried] = 2  # fails twice: back through the 50 ms and 100 ms delay queues, then applied
    dispatch("members", "member_enrolled", enrolled(retried))
    wait_for(lambda: tallied(tally.database_url, retried) == 1, timeout=20, message="applied after two retries")
    assert FAILURES[retried] == 0

    parked = str(uuid.uuid4())
    FAILURES[parked] = 1000
    dispatch("members", "member_enrolled", enrolled(parked))
    letters = wait_for(lambda: proxy.qtally.dead_letters(), timeout=20, message="a dead letter")
    assert letters[0]["attempts"] == 4 and letters[0]["handler_queue"] == handler_queue
    FAILURES[parked] = 0
    assert proxy.qtally.replay_dead_letters() == {"replayed": 1}
    wait_for(lambda: tallied(tally.database_url, parked) == 1, timeout=20, message="applied after replay")
    assert proxy.qtally.dead_letters() == []
