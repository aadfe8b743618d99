"""Publishing a batch of messages with publisher confirms, waiting for the broker once per batch.

kombu's ``confirm_publish`` waits for the broker's ack after every single message: a round trip and a
pass through the event loop per event, paid in the service process. The outbox relay instead publishes
a whole batch on a channel in confirm mode, then waits until the broker has confirmed every message of
it (one ack may cover several, ``multiple``). A nack, a timeout or a lost connection raises, and the
relay then marks nothing of the batch sent: it is published again later and consumers dedupe by id.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from amqp.exceptions import MessageNacked
from kombu import Connection, Exchange, Producer
from nameko.constants import DEFAULT_TRANSPORT_OPTIONS

CONFIRM_TIMEOUT_SECONDS = 30.0
JSON = "application/json"


class BatchPublisher:
    """Publishes ``(routing_key, body, headers)`` messages to one exchange; owns its connection. A body is a
    value for the serializer, or JSON text (``str``/``bytes``) published as it is (``application/json``)."""

    def __init__(self, amqp_uri: str, exchange: Exchange, confirm_timeout: float = CONFIRM_TIMEOUT_SECONDS,
                 serializer: str = "json") -> None:
        self.amqp_uri = amqp_uri
        self.exchange = exchange
        self.confirm_timeout = confirm_timeout
        self.serializer = serializer  # the service's (nameko's ``serializer`` config key)
        self._connection: Connection | None = None
        self._producer: Producer | None = None
        self._next_tag = 0
        self._unconfirmed: set[int] = set()
        self._nacked = 0

    def publish(self, messages: Iterable[tuple[str, dict[str, Any], dict[str, Any]]]) -> None:
        """Publish ``messages`` in order; return only once the broker confirmed every one of them.

        A connection kept from an earlier batch may have gone stale (a broker restart): then the batch is
        tried once more on a fresh connection (a message may go out twice; consumers dedupe).
        """
        messages = list(messages)
        reused = self._connection is not None
        try:
            self._publish_and_wait(messages)
        except Exception:
            self.close()
            if not reused:
                raise
            self._publish_and_wait(messages)

    def close(self) -> None:
        connection, self._connection, self._producer = self._connection, None, None
        if connection is not None:
            try:
                connection.release()
            except Exception:  # closing a broken connection may fail again; it is gone either way
                pass

    def _publish_and_wait(self, messages: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> None:
        try:
            producer = self._open()
            self._unconfirmed.clear()
            self._nacked = 0
            for routing_key, body, headers in messages:
                if isinstance(body, (str, bytes)):  # JSON already (the outbox's rows): sent as it is
                    producer.publish(body, routing_key=routing_key, headers=headers, content_type=JSON,
                                     content_encoding="utf-8", delivery_mode=2)
                else:
                    producer.publish(body, routing_key=routing_key, headers=headers, serializer=self.serializer,
                                     delivery_mode=2)
                self._next_tag += 1
                self._unconfirmed.add(self._next_tag)
            deadline = time.monotonic() + self.confirm_timeout
            while self._unconfirmed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"the broker confirmed {len(messages) - len(self._unconfirmed)} of "
                                       f"{len(messages)} messages in {self.confirm_timeout} s")
                self._connection.drain_events(timeout=remaining)
            if self._nacked:
                raise MessageNacked(f"the broker refused {self._nacked} of {len(messages)} messages")
        except Exception:
            self.close()
            raise

    def _open(self) -> Producer:
        if self._producer is None:
            connection = Connection(self.amqp_uri, transport_options=DEFAULT_TRANSPORT_OPTIONS.copy())
            channel = connection.channel()
            channel.confirm_select()
            channel.events["basic_ack"].add(self._on_ack)
            channel.events["basic_nack"].add(self._on_nack)
            self.exchange(channel).declare()
            self._connection, self._next_tag = connection, 0  # delivery tags count from 1 per channel
            self._producer = Producer(channel, exchange=self.exchange)
        return self._producer

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._nacked += self._settle(delivery_tag, multiple)

    def _settle(self, delivery_tag: int, multiple: bool) -> int:
        settled = {tag for tag in self._unconfirmed if tag <= delivery_tag} if multiple else \
            self._unconfirmed & {delivery_tag}
        self._unconfirmed -= settled
        return len(settled)
