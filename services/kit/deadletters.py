"""The dead-letter queue of a service: park what cannot be handled, list it and why, replay it.

``python -m services.kit.deadletters list members`` / ``replay members [--limit N]`` (``AMQP_URI``
from the environment, default the local broker). Every service also answers the ``dead_letters`` and
``replay_dead_letters`` RPCs (``kit.service``). Two things park messages here, with the same headers:
an event handler that keeps failing (``kit.handlers``) and a message that cannot even be decoded (bad
JSON, a content type not accepted; ``kit.consumer``), whose raw body is kept as it came. Replaying sends
each message back to the queue it came from, with its attempt count reset; the inbox keeps a replay from
applying twice, and an undecodable message is simply parked again.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from typing import Any

from kombu import Connection, Queue
from nameko.amqp.publish import get_producer

from services.kit import queues

ATTEMPT_HEADER = "x-careloop-attempt"
ORIGIN_HEADER = "x-careloop-origin-queue"
ERROR_HEADER = "x-careloop-error"
PARKED_AT_HEADER = "x-careloop-parked-at"
RAW_CONTENT_TYPE = "application/data"
PUBLISH_RETRY_POLICY = {"max_retries": 5, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 2}


def dead_letter_queue_name(service: str) -> str:
    return f"careloop.dead.{service}"


def dead_letter_queue(service: str, config: Any = None) -> Queue:
    """Classic or quorum as ``config`` (or the environment's ``QUEUE_TYPE``) says (``kit.queues``)."""
    return Queue(dead_letter_queue_name(service), durable=True, queue_arguments=queues.parking_arguments(config))


def origin_of(headers: dict[str, Any]) -> str | None:
    """The handler queue a parked message came from: ours, or the broker's when it dead-lettered the message
    itself (a quorum queue's delivery limit: ``x-death``)."""
    deaths = headers.get("x-death") or [{}]
    return headers.get(ORIGIN_HEADER) or deaths[0].get("queue")


def republish(amqp_uri: str, message: Any, exchange: str, routing_key: str, headers: dict[str, Any]) -> None:
    """Publish a copy of ``message`` (its raw body, content type and encoding, its headers updated by
    ``headers``) and return once the broker confirmed it; raises if it did not."""
    merged = dict(message.headers or {})
    merged.update(headers)
    with get_producer(amqp_uri, confirms=True) as producer:
        producer.publish(
            message.body, exchange=exchange, routing_key=routing_key, headers=merged,
            # a message without a content type is "application/data" to kombu: say so, or kombu would
            # serialise the raw body again instead of passing it on as it is
            content_type=message.content_type or RAW_CONTENT_TYPE, content_encoding=message.content_encoding or "binary",
            delivery_mode=2, retry=True, retry_policy=PUBLISH_RETRY_POLICY,
        )


def attempt_of(message: Any) -> int:
    """Which attempt this delivery is (our own header; 1 when absent or not a whole number)."""
    try:
        return max(int((message.headers or {}).get(ATTEMPT_HEADER, 1)), 1)
    except (TypeError, ValueError):
        return 1


def park(amqp_uri: str, service: str, message: Any, reason: str, origin_queue: str, attempt: int) -> None:
    """Put a copy of ``message`` in ``service``'s dead-letter queue with why, from where and when (confirmed
    by the broker on return; the caller acknowledges the original only then)."""
    republish(amqp_uri, message, exchange="", routing_key=dead_letter_queue_name(service), headers={
        ATTEMPT_HEADER: attempt, ERROR_HEADER: reason[:4000], ORIGIN_HEADER: origin_queue,
        PARKED_AT_HEADER: datetime.now(UTC).isoformat(),
    })


def _decode(message: Any) -> Any:
    try:
        return json.loads(message.body)
    except (TypeError, ValueError):
        return message.body if isinstance(message.body, str) else repr(message.body)


def list_dead_letters(amqp_uri: str, service: str, limit: int = 100, config: Any = None) -> list[dict[str, Any]]:
    """Look at up to ``limit`` parked messages without removing them."""
    found = []
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        dead_letter_queue(service, config)(channel).declare()
        try:
            while len(found) < limit:
                message = channel.basic_get(dead_letter_queue_name(service), no_ack=False)
                if message is None:
                    break
                headers = message.headers or {}
                body = _decode(message)
                found.append({
                    "handler_queue": origin_of(headers),
                    "event_id": body.get("event_id") if isinstance(body, dict) else None,
                    "attempts": headers.get(ATTEMPT_HEADER),
                    "error": headers.get(ERROR_HEADER),
                    "parked_at": headers.get(PARKED_AT_HEADER),
                    "content_type": message.properties.get("content_type"),
                    "payload": body,
                })
        finally:
            channel.close()  # unacknowledged messages go back to the queue
    return found


def count_dead_letters(amqp_uri: str, service: str, config: Any = None) -> int:
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        try:
            _name, count, _consumers = dead_letter_queue(service, config)(channel).queue_declare(passive=False)
            return int(count)
        finally:
            channel.close()


def replay_dead_letters(amqp_uri: str, service: str, limit: int = 100, config: Any = None) -> int:
    """Send up to ``limit`` parked messages back to their handlers; returns how many.

    Only the messages parked when the replay starts: one that fails again and is parked again meanwhile
    (an undecodable message always is) waits for the next replay instead of going round in this one."""
    replayed = 0
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as connection:
        channel = connection.channel()
        _name, waiting, _consumers = dead_letter_queue(service, config)(channel).queue_declare()
        limit = min(limit, waiting)
        try:
            while replayed < limit:
                message = channel.basic_get(dead_letter_queue_name(service), no_ack=False)
                if message is None:
                    break
                headers = dict(message.headers or {})
                origin = origin_of(headers)
                headers.pop(ORIGIN_HEADER, None)
                headers.pop("x-death", None)
                if not origin:
                    channel.basic_reject(message.delivery_tag, requeue=True)
                    break
                headers[ATTEMPT_HEADER] = 1
                producer = connection.Producer(channel=channel)
                # the raw body as parked, whatever its content type: an undecodable one is parked again
                producer.publish(message.body, exchange="", routing_key=origin, headers=headers,
                                 content_type=message.properties.get("content_type") or RAW_CONTENT_TYPE,
                                 content_encoding=message.properties.get("content_encoding") or "binary",
                                 delivery_mode=2)
                channel.basic_ack(message.delivery_tag)
                replayed += 1
        finally:
            channel.close()
    return replayed


def main(argv: list[str]) -> int:  # pragma: no cover - operator command
    if len(argv) < 2 or argv[0] not in ("list", "replay"):
        print("usage: python -m services.kit.deadletters list|replay <service> [--limit N]", file=sys.stderr)
        return 2
    limit = int(argv[argv.index("--limit") + 1]) if "--limit" in argv else 100
    uri = os.environ.get("AMQP_URI", "pyamqp://guest:guest@localhost:5672/")
    if argv[0] == "list":
        for entry in list_dead_letters(uri, argv[1], limit):
            print(json.dumps(entry, ensure_ascii=False, default=str))
    else:
        print(f"replayed {replay_dead_letters(uri, argv[1], limit)}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
