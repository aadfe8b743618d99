"""A message that cannot be decoded is parked with its raw body and the reason, never dropped.

kombu used to log "Can't decode message body" and acknowledge such a message: it was gone. The kit's
consumer (``kit.consumer``) parks it in the service's dead-letter queue and acknowledges it only once the
broker confirmed the park; ``deadletters list`` shows it; a replay parks it again.
"""

from __future__ import annotations

import subprocess
import uuid
from typing import Any

import pytest
from kombu import Connection
from nameko.standalone.events import event_dispatcher
from prometheus_client import REGISTRY

from services.kit import deadletters
from services.kit.clock import isoformat, utcnow
from services.members.service import MembersService
from tests.harness import scalar, service_config, wait_for

EVENT_QUEUE = "evt-records-visit_completed--members.on_visit_completed"
POISON = [
    # (what, body, content type, content encoding)
    ("bad JSON", b'{"event_id": "e1", "member_id": ', "application/json", "utf-8"),
    ("a content type not accepted", b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00}\x94.", "application/x-python-serialize",
     "binary"),
    ("a body that is not UTF-8", b"\xff\xfe{\x00}\x00", "application/json", "utf-8"),
]


def publish_raw(amqp_uri: str, queue: str, body: bytes, content_type: str, content_encoding: str) -> None:
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as connection:
        connection.Producer().publish(body, exchange="", routing_key=queue, content_type=content_type,
                                      content_encoding=content_encoding, delivery_mode=2)


def parked(amqp_uri: str, service: str) -> list:
    """The raw messages in ``service``'s dead-letter queue, looked at and left there."""
    found = []
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        try:
            while (message := channel.basic_get(deadletters.dead_letter_queue_name(service), no_ack=False)):
                found.append(message)
        finally:
            channel.close()  # unacknowledged: back to the queue
    return found


def raw(message: Any) -> bytes:
    """The body as it travelled (py-amqp hands over a body it could decode as text)."""
    body = message.body
    return body if isinstance(body, bytes) else body.encode(message.properties.get("content_encoding") or "utf-8")


def queue_depth(amqp_uri: str, queue: str) -> int:
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        try:
            return channel.queue_declare(queue, passive=True).message_count
        finally:
            channel.close()


def messages_in(vhost: str, queue: str) -> int:
    """Messages in ``queue``, ready or delivered and not yet acknowledged (the broker's own count)."""
    out = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", vhost, "--no-table-headers", "name", "messages"],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    return next(int(count) for name, count in (line.rsplit("\t", 1) for line in out.splitlines()) if name == queue)


def undecodable_count(service: str, queue: str) -> float:
    return REGISTRY.get_sample_value("careloop_messages_undecodable_total", {"service": service, "queue": queue}) or 0


def test_undecodable_events_and_rpc_requests_are_parked_raw_with_the_reason(start_service, rpc, amqp_uri):
    members = start_service(MembersService)
    before = undecodable_count("members", EVENT_QUEUE)
    for _what, body, content_type, encoding in POISON:
        publish_raw(amqp_uri, EVENT_QUEUE, body, content_type, encoding)
    publish_raw(amqp_uri, "rpc-members", b"not json at all", "application/json", "utf-8")  # cannot be answered

    wait_for(lambda: len(parked(amqp_uri, "members")) == 4, timeout=15, message="four messages parked")
    messages = parked(amqp_uri, "members")
    by_body = {raw(m): m for m in messages}
    for what, body, content_type, _encoding in POISON:
        message = by_body[body]  # the raw body, byte for byte
        assert message.properties["content_type"] == content_type, what
        assert message.headers[deadletters.ORIGIN_HEADER] == EVENT_QUEUE
        assert message.headers[deadletters.ERROR_HEADER].startswith("undecodable message: "), what
        assert message.headers[deadletters.PARKED_AT_HEADER]
    assert by_body[b"not json at all"].headers[deadletters.ORIGIN_HEADER] == "rpc-members"
    assert "ContentDisallowed" in by_body[POISON[1][1]].headers[deadletters.ERROR_HEADER]
    assert queue_depth(amqp_uri, EVENT_QUEUE) == 0  # acknowledged once parked
    assert undecodable_count("members", EVENT_QUEUE) - before == 3

    # the operator sees them, with the reason
    listed = deadletters.list_dead_letters(amqp_uri, "members")
    assert len(listed) == 4 and all(entry["error"].startswith("undecodable message") for entry in listed)
    assert {entry["content_type"] for entry in listed} == {"application/json", "application/x-python-serialize"}

    # and the service goes on: it answers, and applies a good event
    proxy = rpc()
    member = proxy.members.enrol({"full_name": "Guo Wen", "phone": "13500135000", "birth_date": "1980-02-03",
                                  "home_branch": "SH01"})
    visit_id = f"V-{uuid.uuid4().hex[:8]}"
    event_dispatcher(service_config(amqp_uri))("records", "visit_completed", {
        "event_id": str(uuid.uuid4()), "occurred_at": isoformat(utcnow()), "visit_id": visit_id,
        "member_id": member["id"], "branch": "SH01", "doctor_id": "d1", "kind": "return", "bill_id": f"B-{visit_id}",
        "completed_at": isoformat(utcnow()), "currency": "CNY",
        "items": [{"category": "treatment", "code": "T1", "amount_minor": 100}],
        "payments": [{"method": "cash", "amount_minor": 100}], "qualifying_minor": 100, "first_visit": False,
        "first_paid_visit": False, "referral_source": None})
    wait_for(lambda: scalar(members.database_url, "SELECT count(*) FROM member_visits"), timeout=15,
             message="the good event applied")

    # a replay sends each back where it came from; it cannot be decoded any better, so it is parked again
    assert deadletters.replay_dead_letters(amqp_uri, "members") == 4
    wait_for(lambda: len(parked(amqp_uri, "members")) == 4 and queue_depth(amqp_uri, EVENT_QUEUE) == 0,
             timeout=15, message="the replayed messages parked again")
    assert undecodable_count("members", EVENT_QUEUE) - before == 6


@pytest.fixture
def dead_letters_refused(amqp_uri):
    """A policy making the broker refuse every message for members' dead-letter queue (as a full or broken
    queue would): its publisher confirms become nacks."""
    vhost = amqp_uri.rsplit("/", 1)[1]
    args = ["rabbitmqctl", "-q", "set_policy", "-p", vhost, "--apply-to", "queues", "refuse-dead-members",
            r"^careloop\.dead\.members$", '{"max-length": 0, "overflow": "reject-publish"}']
    subprocess.run(args, check=True, capture_output=True, timeout=60)

    def lift() -> None:
        subprocess.run(["rabbitmqctl", "-q", "clear_policy", "-p", vhost, "refuse-dead-members"],
                       check=False, capture_output=True, timeout=60)

    yield lift
    lift()


def test_an_undecodable_message_whose_park_is_refused_is_kept_not_acknowledged(start_service, amqp_uri,
                                                                               dead_letters_refused, caplog):
    start_service(MembersService)
    before = undecodable_count("members", EVENT_QUEUE)

    def refused() -> int:
        return sum(1 for record in caplog.records if record.getMessage().startswith("could not park a message"))

    publish_raw(amqp_uri, EVENT_QUEUE, b"{broken", "application/json", "utf-8")
    # each park is nacked: the message goes back to its queue and is tried again a second later, never dropped
    vhost = amqp_uri.rsplit("/", 1)[1]
    for attempt in range(1, 4):
        wait_for(lambda attempt=attempt: refused() >= attempt, timeout=15, message=f"park {attempt} refused")
        assert messages_in(vhost, EVENT_QUEUE) == 1 and parked(amqp_uri, "members") == []
    assert undecodable_count("members", EVENT_QUEUE) == before
    dead_letters_refused()  # the dead-letter queue takes messages again
    wait_for(lambda: [raw(m) for m in parked(amqp_uri, "members")] == [b"{broken"], timeout=15,
             message="the message parked once the broker takes it")
    assert queue_depth(amqp_uri, EVENT_QUEUE) == 0
