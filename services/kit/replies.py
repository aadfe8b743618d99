"""A process's own RPC calls on RabbitMQ's direct reply-to: requests out and replies in on one channel.

nameko's caller publishes each request on a pooled connection, with a publisher confirm (and ``mandatory``, to
tell an unknown service from a slow one), and gets its reply through a reply queue of its own, acknowledging each
reply. With RabbitMQ's direct reply-to (``amq.rabbitmq.reply-to``) a reply goes straight to the caller's channel,
unqueued and unacknowledged, and an unknown service is told by the broker returning the request (``mandatory``)
with no confirm to wait for. RabbitMQ requires the request to be published on the very channel that consumes
``amq.rabbitmq.reply-to``; so ``DirectReplies`` keeps one connection and one channel per service process:

- **One reader.** A managed thread is the only one that reads the connection (py-amqp is not made for two
  readers, and eventlet refuses a second simultaneous read of a socket): it receives the replies and the
  returned requests and wakes each waiting call; no call ever waits on the socket itself. Publishes are written
  by the callers' own threads, whole frames at a time (py-amqp holds a lock per connection for each frame it
  writes), and wait for nothing.
- **Failing fast.** When the connection dies (broker stopped, link cut and found by heartbeats, a channel
  error), every call waiting for a reply on it fails at once with a broker error (``Unavailable`` to the
  peer's caller): its reply can never come, it was addressed to that channel. A call while there is no
  connection waits at most ``CONNECT_WAIT`` (1 s) for one, then fails the same way; the reader reconnects
  (1 s, then 1 s longer each time up to 5 s, as the kit's consumer), and calls go out again as soon as it
  has. A publish that fails or is interrupted (its
  deadline) may have left half a frame: the connection is closed and made again.
- **Deadlines** stay with the caller (``PEER_TIMEOUT``, ``RPC_TIMEOUT``: ``kit.peers``); a call that gives up
  leaves nothing behind (its entry is held weakly, by the call's reply only).

The answering side is the kit's ``RpcConsumer`` (``kit.consumer``), which sends a reply to a direct reply-to
address through the default exchange, as RabbitMQ requires (nameko sends every reply through the RPC exchange).
A service on older code would answer into the void: deploy the answering side first.
"""

from __future__ import annotations

import logging
import uuid
import weakref
from typing import Any

import amqp
import eventlet
import kombu.serialization
from eventlet.event import Event
from kombu import Connection
from kombu.exceptions import OperationalError
from nameko.constants import (
    AMQP_SSL_CONFIG_KEY,
    AMQP_URI_CONFIG_KEY,
    DEFAULT_HEARTBEAT,
    HEARTBEAT_CONFIG_KEY,
    LOGIN_METHOD_CONFIG_KEY,
    PERSISTENT,
)
from nameko.exceptions import UnknownService, deserialize
from nameko.extensions import SharedExtension
from nameko.messaging import HeaderEncoder
from nameko.rpc import get_rpc_exchange

from services.kit.consumer import RECONNECT_INTERVAL_MAX, RECONNECT_INTERVAL_START, RECONNECT_INTERVAL_STEP

log = logging.getLogger(__name__)

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
CONNECT_TIMEOUT = 2.0
"""Seconds a (re)connection may take before it counts as failed."""
CONNECT_WAIT = 1.0
"""Seconds a call waits for the reader to (re)connect before it fails (``NoConnection``)."""
READ_INTERVAL = 1.0
"""Seconds the reader waits for a frame before it looks at the heartbeats (and whether it should stop)."""


class NoConnection(OperationalError):
    """The broker cannot be reached just now (a broker error: ``BROKER_ERRORS``)."""


class Reply:
    """What a call waits on: the reply's body, or the reason it will never come."""

    def __init__(self, event: Event) -> None:
        self._event = event  # the listener holds it weakly: a call dropped by its caller leaves nothing

    def result(self) -> Any:
        body = self._event.wait()
        error = body.get("error")
        if error:
            raise deserialize(error)
        return body["result"]


class DirectReplies(SharedExtension):
    """The process's channel for its own RPC calls (the module's docstring)."""

    def setup(self) -> None:
        config = self.container.config
        self._exchange = get_rpc_exchange(config).name
        self._connection_args = {"ssl": config.get(AMQP_SSL_CONFIG_KEY),
                                 "login_method": config.get(LOGIN_METHOD_CONFIG_KEY),
                                 "heartbeat": config.get(HEARTBEAT_CONFIG_KEY, DEFAULT_HEARTBEAT),
                                 "connect_timeout": CONNECT_TIMEOUT}
        self._uri = config[AMQP_URI_CONFIG_KEY]
        self._accept = kombu.serialization.prepare_accept_content(self.container.accept)  # names -> content types
        self._waiting: weakref.WeakValueDictionary[str, Event] = weakref.WeakValueDictionary()
        self._connect_waiters: set[Event] = set()
        self._connection: Connection | None = None
        self._channel: Any = None
        self._stopping = False
        self._lost_once = False
        self._thread: Any = None

    def start(self) -> None:
        self._thread = self.container.spawn_managed_thread(self._read_forever, identifier="direct-replies")

    def stop(self) -> None:
        self._stopping = True
        if self._thread is not None:
            self._thread.kill()
        self._close()

    def kill(self) -> None:
        self.stop()

    # -- calls -----------------------------------------------------------------------------------------

    def call(self, routing_key: str, payload: Any, headers: dict[str, Any], delivery_mode: int = PERSISTENT,
             expiration: float | None = None) -> Reply:
        """Publish a request for ``routing_key`` (``service.method``); its reply arrives on the ``Reply``."""
        channel = self._channel
        if channel is None:
            channel = self._wait_for_channel()
        content_type, encoding, body = kombu.serialization.dumps(payload, self.container.serializer)
        correlation_id = uuid.uuid4().hex
        event = Event()
        properties: dict[str, Any] = {"content_type": content_type, "content_encoding": encoding,
                                      "application_headers": headers, "correlation_id": correlation_id,
                                      "reply_to": DIRECT_REPLY_TO, "delivery_mode": delivery_mode}
        if expiration is not None:
            properties["expiration"] = str(int(expiration * 1000))  # the broker drops a request left unread
        self._waiting[correlation_id] = event
        reply = Reply(event)
        try:
            channel.basic_publish(amqp.Message(body, **properties), exchange=self._exchange,
                                  routing_key=routing_key, mandatory=True)
        except BaseException:  # a broker error, or the caller's deadline: maybe half a frame written
            self._waiting.pop(correlation_id, None)
            self._broken(channel)
            raise
        if channel is not self._channel and not event.ready():  # the connection died meanwhile
            event.send_exception(NoConnection("the connection to the message broker was lost"))
        return reply

    def _wait_for_channel(self) -> Any:
        """The channel once the reader has (re)connected, if it does within ``CONNECT_WAIT`` (a service's first
        calls, just after it started; a call just after the broker came back); else ``NoConnection``."""
        waiter = Event()
        self._connect_waiters.add(waiter)
        try:
            with eventlet.Timeout(CONNECT_WAIT, False):
                waiter.wait()
        finally:
            self._connect_waiters.discard(waiter)
        if self._channel is None:
            raise NoConnection("no connection to the message broker just now")
        return self._channel

    # -- the reader ------------------------------------------------------------------------------------

    def _read_forever(self) -> None:
        interval = RECONNECT_INTERVAL_START
        while not self._stopping:
            try:
                self._connect()
            except Exception as error:
                log.warning("cannot reach the message broker for RPC calls (%s); trying again in %.0f s",
                            type(error).__name__, interval)
                self._close()
                eventlet.sleep(interval)
                interval = min(interval + RECONNECT_INTERVAL_STEP, RECONNECT_INTERVAL_MAX)
                continue
            if interval > RECONNECT_INTERVAL_START or self._lost_once:
                log.warning("connected to the message broker again for RPC calls")
            interval = RECONNECT_INTERVAL_START
            try:
                self._read()
            except Exception as error:  # whatever ended the connection, the reader must live on: reconnect
                if not self._stopping:
                    log.warning("lost the message broker connection of RPC calls (%s); calls waiting on it "
                                "fail now", type(error).__name__)
            finally:
                self._lost_once = True
                self._close()

    def _connect(self) -> None:
        connection = Connection(self._uri, **self._connection_args)
        self._connection = connection
        connection.ensure_connection(max_retries=0)  # one attempt: the reader's loop paces the next
        channel = connection.channel()
        channel.exchange_declare(self._exchange, "topic", durable=True, auto_delete=False)
        channel.basic_consume(DIRECT_REPLY_TO, no_ack=True, callback=self._on_reply)
        channel.events["basic_return"].add(self._on_return)
        self._channel = channel  # only now may calls publish: RabbitMQ refuses a reply-to nobody consumes
        for waiter in list(self._connect_waiters):
            waiter.send()

    def _read(self) -> None:
        connection = self._connection
        while not self._stopping and connection is self._connection:
            try:
                connection.drain_events(timeout=READ_INTERVAL)
            except TimeoutError:  # no frame for a while: time to look at the heartbeats
                connection.heartbeat_check()

    def _on_reply(self, message: Any) -> None:
        event = self._waiting.pop(message.properties.get("correlation_id"), None)
        if event is None:  # its caller gave up (deadline)
            return
        try:
            body = kombu.serialization.loads(message.body, message.properties.get("content_type"),
                                             message.properties.get("content_encoding"), accept=self._accept)
        except Exception as error:
            event.send_exception(error)
            return
        event.send(body)

    def _on_return(self, exc: Exception, exchange: str, routing_key: str, message: Any) -> None:
        """The broker returned a request no queue takes: no such service (nameko's ``UnknownService``)."""
        event = self._waiting.pop(message.properties.get("correlation_id"), None)
        if event is not None:
            event.send_exception(UnknownService(routing_key.split(".", 1)[0]))

    def _broken(self, channel: Any) -> None:
        """A publish on ``channel`` failed: close its connection (the reader makes a new one)."""
        if channel is self._channel:
            self._close()

    def _close(self) -> None:
        """Forget the connection and fail every call waiting on it: their replies cannot come any more."""
        connection, self._connection, self._channel = self._connection, None, None
        waiting = list(self._waiting.values())
        self._waiting.clear()
        for event in waiting:
            if not event.ready():
                event.send_exception(NoConnection("the connection to the message broker was lost"))
        if connection is not None:
            try:
                connection.collect()  # drop the socket without a goodbye: the broker may be gone
            except Exception:
                log.debug("closing the RPC calls' connection failed", exc_info=True)


class DirectMethodProxy(HeaderEncoder):
    """``service.method`` called through ``DirectReplies``, with the worker's context in the headers."""

    def __init__(self, worker_ctx: Any, service_name: str, method_name: str, replies: DirectReplies,
                 delivery_mode: int = PERSISTENT, expiration: float | None = None) -> None:
        self.worker_ctx = worker_ctx
        self._routing_key = f"{service_name}.{method_name}"
        self._replies = replies
        self._delivery_mode = delivery_mode
        self._expiration = expiration

    def call_async(self, *args: Any, **kwargs: Any) -> Reply:
        return self._replies.call(self._routing_key, {"args": args, "kwargs": kwargs},
                                  self.get_message_headers(self.worker_ctx), self._delivery_mode, self._expiration)
