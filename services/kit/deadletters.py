"""The dead-letter queue of a service: list what was parked and why, and replay it.

``python -m services.kit.deadletters list members`` / ``replay members [--limit N]`` (``AMQP_URI``
from the environment, default the local broker). Every service also answers the ``dead_letters`` and
``replay_dead_letters`` RPCs (``kit.operations``). Replaying sends each message back to the queue of
the handler that failed, with its attempt count reset; the inbox keeps a replay from applying twice.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from kombu import Connection

from services.kit.handlers import (
    ATTEMPT_HEADER,
    ERROR_HEADER,
    ORIGIN_HEADER,
    PARKED_AT_HEADER,
    dead_letter_queue,
    dead_letter_queue_name,
)


def _decode(message: Any) -> Any:
    try:
        return json.loads(message.body)
    except (TypeError, ValueError):
        return message.body if isinstance(message.body, str) else repr(message.body)


def list_dead_letters(amqp_uri: str, service: str, limit: int = 100) -> list[dict[str, Any]]:
    """Look at up to ``limit`` parked messages without removing them."""
    found = []
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        dead_letter_queue(service)(channel).declare()
        try:
            while len(found) < limit:
                message = channel.basic_get(dead_letter_queue_name(service), no_ack=False)
                if message is None:
                    break
                headers = message.headers or {}
                body = _decode(message)
                found.append({
                    "handler_queue": headers.get(ORIGIN_HEADER),
                    "event_id": body.get("event_id") if isinstance(body, dict) else None,
                    "attempts": headers.get(ATTEMPT_HEADER),
                    "error": headers.get(ERROR_HEADER),
                    "parked_at": headers.get(PARKED_AT_HEADER),
                    "payload": body,
                })
        finally:
            channel.close()  # unacknowledged messages go back to the queue
    return found


def count_dead_letters(amqp_uri: str, service: str) -> int:
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        try:
            _name, count, _consumers = dead_letter_queue(service)(channel).queue_declare(passive=False)
            return int(count)
        finally:
            channel.close()


def replay_dead_letters(amqp_uri: str, service: str, limit: int = 100) -> int:
    """Send up to ``limit`` parked messages back to their handlers; returns how many."""
    replayed = 0
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as connection:
        channel = connection.channel()
        dead_letter_queue(service)(channel).declare()
        try:
            while replayed < limit:
                message = channel.basic_get(dead_letter_queue_name(service), no_ack=False)
                if message is None:
                    break
                headers = dict(message.headers or {})
                origin = headers.pop(ORIGIN_HEADER, None)
                if not origin:
                    channel.basic_reject(message.delivery_tag, requeue=True)
                    break
                headers[ATTEMPT_HEADER] = 1
                producer = connection.Producer(channel=channel)
                producer.publish(message.body, exchange="", routing_key=origin, headers=headers,
                                 content_type=message.content_type,
                                 content_encoding=message.content_encoding, delivery_mode=2)
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
