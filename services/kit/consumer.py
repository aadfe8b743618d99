"""The broker connection a CareLoop service consumes on: it outlives the broker and parks what it cannot decode.

Every consuming entrypoint of the kit — ``@rpc`` and ``@event_handler`` — shares this ``QueueConsumer`` (one
connection per service process; a ``Peer``'s replies come on a channel of their own, ``kit.replies``), in place
of nameko's, which has three gaps:

1. **An acknowledgement on a dead connection.** When the broker goes away under a worker, the ack (or
   requeue) that ends it raises (``BrokenPipeError``, ``ConnectionResetError``) in the worker thread, and
   nameko kills a container whose worker raises: the whole service exited. Here the failure is logged and
   the worker ends normally. Nothing is lost: the broker put the unacknowledged message back when the
   connection died and delivers it again; the inbox (events) or the idempotency key (commands) makes that
   second delivery harmless.
2. **Reconnecting.** kombu reconnects forever, waiting 2 s longer after each failure up to 30 s; here 1 s
   longer up to ``RECONNECT_INTERVAL_MAX`` (5 s), so a service consumes again within seconds of the
   broker's return, and each failed attempt is one warning line, not a stack trace. And a service asked to
   stop while the broker is away stops (nameko's would wait for the broker to cancel its consumers there,
   forever).
3. **A message that cannot be decoded** (bad JSON, a content type the service does not accept, a body the
   serializer refuses) is acknowledged and dropped by kombu, its body written to the log. Here it is parked
   in ``careloop.dead.<service>`` with its raw body as it came and the reason (``kit.deadletters``), and
   acknowledged only after the broker confirmed the park; if the park fails, the message is put back.
   Replayed, it is parked again (it cannot be decoded any better), never looped. An undecodable RPC request
   cannot be answered (the reply would need the request's own encoding): it is parked and logged.

``RpcConsumer`` adds the same care to RPC replies: a reply that cannot be sent because the broker is away
is logged and the request put back (if the connection still lives), instead of killing the service.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import sys
from collections.abc import Iterator
from functools import partial
from typing import Any

import eventlet
import kombu.serialization
from kombu import Connection
from kombu.exceptions import OperationalError
from kombu.pools import producers
from nameko.constants import (
    AMQP_SSL_CONFIG_KEY,
    AMQP_URI_CONFIG_KEY,
    DEFAULT_RETRY_POLICY,
    DEFAULT_TRANSPORT_OPTIONS,
    LOGIN_METHOD_CONFIG_KEY,
    NON_PERSISTENT,
)
from nameko.exceptions import UnserializableValueError
from nameko.exceptions import serialize as serialize_error
from nameko.messaging import QueueConsumer as NamekoQueueConsumer
from nameko.rpc import Rpc as NamekoRpc
from nameko.rpc import RpcConsumer as NamekoRpcConsumer
from nameko.rpc import get_rpc_exchange

from services.kit import deadletters, queues
from services.kit.telemetry import UNDECODABLE

log = logging.getLogger(__name__)

_transport = Connection("pyamqp://")  # never connected: only asked which errors mean "the broker is away"
BROKER_ERRORS: tuple[type[BaseException], ...] = tuple(
    {*_transport.connection_errors, *_transport.channel_errors, OperationalError})
"""Errors that mean the broker (or the connection to it) failed, not the message or the code: socket
errors, AMQP connection and channel errors, kombu's ``OperationalError`` after its own retries."""

RECONNECT_INTERVAL_START = 1.0
RECONNECT_INTERVAL_STEP = 1.0
RECONNECT_INTERVAL_MAX = 5.0
UNDECODABLE_REASON = "undecodable message"
"""How the dead-letter queue's error header of an undecodable message begins."""
REPLY_CONFIRMS_SETTING = "RPC_REPLY_CONFIRMS"
"""Config key: wait for the broker's confirm of each RPC reply (nameko always does; the kit not by default)."""
DIRECT_REPLY_PREFIX = "amq.rabbitmq.reply-to."
"""How the broker rewrites the reply address of a request sent with direct reply-to (``kit.replies``)."""
PARK_RETRY_PAUSE = 1.0
"""Seconds before an undecodable message whose park failed is put back (so a broker that refuses the park
does not make the consumer spin on it)."""


def _where(message: Any) -> str:
    """Where a message was going, for a log line: its routing key (an event type or ``service.method``),
    never its body or headers (which may hold personal data)."""
    info = getattr(message, "delivery_info", None) or {}
    return str(info.get("routing_key") or info.get("exchange") or "?")


class _StopReconnecting(Exception):
    """Raised inside the reconnection loop to end it: the service is stopping."""


class QueueConsumer(NamekoQueueConsumer):
    """nameko's queue consumer, with acknowledgements that survive a dead connection, quicker reconnects
    and undecodable messages parked (see the module's docstring)."""

    _connected = False
    """Whether the consumers are set up on a live connection (False from a connection loss to the reconnect)."""

    # -- acknowledgements ------------------------------------------------------------------------------

    def ack_message(self, message: Any) -> None:
        self._settle(super().ack_message, "acknowledge", message)

    def requeue_message(self, message: Any) -> None:
        self._settle(super().requeue_message, "put back", message)

    @staticmethod
    def _settle(settle: Any, what: str, message: Any) -> None:
        try:
            settle(message)
        except BROKER_ERRORS as error:
            log.warning("could not %s a message (the broker connection failed: %s); the broker delivers it again",
                        what, type(error).__name__, extra={"routing_key": _where(message)})

    # -- connection ------------------------------------------------------------------------------------

    def run(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().run(*args, **kwargs)
        except _StopReconnecting:
            log.info("stopped while the message broker was away")

    @contextlib.contextmanager
    def establish_connection(self) -> Iterator[Any]:
        self._connected = False
        self._drop_pending_removals()
        with self.create_connection() as connection:
            connection.ensure_connection(self.on_connection_error, self.connect_max_retries,
                                         interval_start=RECONNECT_INTERVAL_START,
                                         interval_step=RECONNECT_INTERVAL_STEP,
                                         interval_max=RECONNECT_INTERVAL_MAX, callback=self._while_reconnecting)
            yield connection

    def on_consume_ready(self, connection: Any, channel: Any, consumers: Any, **kwargs: Any) -> None:
        self._connected = True
        super().on_consume_ready(connection, channel, consumers, **kwargs)

    def _while_reconnecting(self) -> None:
        """Called every second while the broker cannot be reached: let entrypoints that are stopping go,
        and end the loop once the service stops (or is killed)."""
        self._drop_pending_removals()
        if self.should_stop or (self._consumers_ready.ready() and not self._providers):
            raise _StopReconnecting()

    def _drop_pending_removals(self) -> None:
        """Entrypoints that asked to stop while there is no connection: their consumers went with it, and
        there is no consumer loop to cancel them (nameko's would make them wait for the broker)."""
        pending, self._pending_remove_providers = self._pending_remove_providers, {}
        for provider, removed in pending.items():
            self._consumers.pop(provider, None)
            removed.send()

    def on_connection_error(self, exc: Exception, interval: float) -> None:
        log.warning("cannot reach the message broker (%s: %s); trying again in %.0f s", type(exc).__name__, exc,
                    interval)

    def on_connection_revived(self) -> None:
        if self._consumers_ready.ready():  # not the first connection: a reconnection
            log.warning("connected to the message broker again; consuming")

    # -- messages --------------------------------------------------------------------------------------

    def handle_message(self, provider: Any, body: Any, message: Any) -> None:
        # nameko hands every message over in a greenthread of its own, which then spawns the worker: two
        # greenthreads a message. While the worker pool has room, spawning the worker cannot block (an
        # entrypoint's hand-over does nothing else that waits), so it is done here, on the consumer's thread:
        # one greenthread a message. When the pool is full, the hand-over waits for a free worker in a thread
        # of its own as before: the consumer's thread must go on reading, or a worker waiting for a peer's
        # reply (delivered by this same thread) would wait for ever.
        if self.container._worker_pool.free() > 0:
            self._hand_over(provider, body, message)
            return
        ident = f"{type(provider).__name__}.handle_message[{_where(message)}]"
        self.container.spawn_managed_thread(partial(self._hand_over, provider, body, message), identifier=ident)

    def _hand_over(self, provider: Any, body: Any, message: Any) -> None:
        """Give a message to its entrypoint. Whatever fails in doing so (not the worker: that has its own
        error handling) would have killed the service: the message is parked instead, so that it cannot
        fail the same way over and over (or put back, if even the park fails), from a thread of its own (a
        park waits for the broker's confirm, and this may be the consumer's thread)."""
        try:
            provider.handle_message(body, message)
        except Exception as exc:
            log.exception("could not hand a message to its entrypoint", extra={"routing_key": _where(message)})
            self.container.spawn_managed_thread(
                partial(self._park, message, "could not be handed to its entrypoint", exc), identifier="park-unhandled")

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        """kombu could not decode ``message``: park it (raw) and acknowledge it once parked, off the
        consumer's own thread (a park waits for the broker's confirm)."""
        self.container.spawn_managed_thread(partial(self._park, message, UNDECODABLE_REASON, exc),
                                            identifier="park-undecodable")

    def _park(self, message: Any, why: str, exc: Exception) -> None:
        """Park ``message`` in the service's dead-letter queue (the reason: ``why`` and ``exc``), then
        acknowledge it; if the broker will not take the copy, put the original back (after a pause: no
        spinning on a broker that refuses)."""
        service = self.container.service_name
        queue = self._queue_of(message)
        content_type = getattr(message, "content_type", None)
        reason = f"{why}: {type(exc).__name__}: {exc}"
        try:
            deadletters.park(self.amqp_uri, service, message, reason, queue, deadletters.attempt_of(message))
        except Exception as error:
            log.error("could not park a message (%s); putting it back", type(error).__name__,
                      extra={"queue": queue, "content_type": content_type})
            eventlet.sleep(PARK_RETRY_PAUSE)
            self.requeue_message(message)
            return
        if why == UNDECODABLE_REASON:
            UNDECODABLE.labels(service, queue).inc()
        log.error("parked a message in the dead-letter queue: %s", why, extra={
            "queue": queue, "content_type": content_type, "error": type(exc).__name__})
        self.ack_message(message)

    def _queue_of(self, message: Any) -> str:
        """The queue ``message`` was consumed from (found by its consumer tag)."""
        tag = (message.delivery_info or {}).get("consumer_tag")
        for consumer in list(self._consumers.values()):
            for queue_name, consumer_tag in getattr(consumer, "_active_tags", {}).items():
                if consumer_tag == tag:
                    return queue_name
        return _where(message)


class RpcConsumer(NamekoRpcConsumer):
    """nameko's RPC consumer on the kit's queue consumer; a reply the broker cannot take is not fatal, and a
    reply costs less.

    nameko builds, for every reply, a ``Responder``, a ``Publisher``, the RPC exchange and a kombu
    ``Connection`` (only to find its pool of producers), encodes the answer twice (a "can it be
    serialised" check, then the publish), and publishes it persistent into the caller's reply queue (which
    is durable) with a publisher confirm: the broker writes each reply to disk and the worker waits for it.
    Here the pool and the exchange are looked up once, the reply is encoded once and sent transient, and
    the confirm is waited for only if ``RPC_REPLY_CONFIRMS`` is set (default: not). A reply is of use only
    to a caller still waiting for it (seconds: ``PEER_TIMEOUT``, ``RPC_TIMEOUT``); one lost with a broker
    failure between its publish and the acknowledgement of the request leaves the caller to time out and
    retry under its idempotency key, as a lost request does (the gateway's requests are transient already).
    A publish on a dead connection still fails at once, and the request is put back as before.
    """

    queue_consumer = QueueConsumer()

    def setup(self) -> None:
        super().setup()
        config = self.container.config
        self.queue.queue_arguments = queues.consumer_arguments(config, None)  # classic or quorum (kit.queues)
        confirms = bool(config.get(REPLY_CONFIRMS_SETTING, False))
        self._reply_exchange = get_rpc_exchange(config)
        self._reply_producers = producers[Connection(
            config[AMQP_URI_CONFIG_KEY], ssl=config.get(AMQP_SSL_CONFIG_KEY),
            login_method=config.get(LOGIN_METHOD_CONFIG_KEY),
            transport_options={**DEFAULT_TRANSPORT_OPTIONS, "confirm_publish": confirms})]

    def handle_message(self, body: Any, message: Any) -> None:
        """nameko's: the request to its method's entrypoint, or, when that fails (an unknown method, arguments
        that do not fit), the error back to the caller. That reply is sent from a thread of its own: the hand-over
        may run on the consumer's thread, which must not wait for a publish."""
        try:
            provider = self.get_provider_for_method(message.delivery_info["routing_key"])
            provider.handle_message(body, message)
        except Exception:
            self.container.spawn_managed_thread(partial(self._refuse, message, sys.exc_info()),
                                                identifier=f"rpc-refused[{_where(message)}]")

    def _refuse(self, message: Any, exc_info: Any) -> None:
        """Answer a request no worker took with its error; a reply that fails other than by the broker (which
        ``handle_result`` absorbs) parks the request, as a failed hand-over does."""
        try:
            self.handle_result(message, None, exc_info)
        except Exception as exc:
            log.exception("could not answer a request with its error", extra={"routing_key": _where(message)})
            self.queue_consumer._park(message, "could not be handed to its entrypoint", exc)

    def handle_result(self, message: Any, result: Any, exc_info: Any) -> tuple[Any, Any]:
        try:
            result, exc_info = self._reply(message, result, exc_info)
        except BROKER_ERRORS as error:
            # the caller gets no answer and retries (under its idempotency key); if this connection still
            # lives the request is put back, else the broker has already taken it back
            log.warning("could not send an RPC reply (%s); the request goes back to the queue",
                        type(error).__name__, extra={"routing_key": _where(message)})
            self.queue_consumer.requeue_message(message)
            return result, exc_info
        self.queue_consumer.ack_message(message)
        return result, exc_info

    def _reply(self, message: Any, result: Any, exc_info: Any) -> tuple[Any, Any]:
        """What nameko's ``Responder.send_response`` does: the answer (or the error) in the request's own
        encoding; an answer that cannot be encoded becomes ``UnserializableValueError``."""
        error = serialize_error(exc_info[1]) if exc_info is not None else None
        serializer = kombu.serialization.registry.type_to_name[message.properties["content_type"]]
        try:
            content_type, encoding, body = kombu.serialization.dumps({"result": result, "error": error}, serializer)
        except Exception:
            exc_info = sys.exc_info()
            error, result = serialize_error(UnserializableValueError(result)), None
            content_type, encoding, body = kombu.serialization.dumps({"result": None, "error": error}, serializer)
        reply_to = message.properties["reply_to"]
        # a caller on RabbitMQ's direct reply-to (kit.replies) is reached through the default exchange only
        exchange = "" if reply_to.startswith(DIRECT_REPLY_PREFIX) else self._reply_exchange
        with self._reply_producers.acquire(block=True) as producer:
            producer.publish(body, content_type=content_type, content_encoding=encoding,
                             exchange=exchange, routing_key=reply_to,
                             correlation_id=message.properties.get("correlation_id"), headers={},
                             delivery_mode=NON_PERSISTENT,
                             retry=True, retry_policy=DEFAULT_RETRY_POLICY)
        return result, exc_info


def signature_of(service_cls: type, method_name: str) -> inspect.Signature:
    """The signature nameko's ``inspect.getcallargs`` checks a call of ``service_cls.method_name`` against."""
    return inspect.signature(getattr(service_cls, method_name), follow_wrapped=False)


class Rpc(NamekoRpc):
    """nameko's ``@rpc`` entrypoint on the kit's consumer (``kit.service.rpc`` is the decorator to use), with a
    cheaper check of each call's arguments.

    nameko checks every call with ``inspect.getcallargs``, which builds the method's signature anew each time
    (~12 µs a call). Here the signature is built once, at setup, and each call is bound to it (~2 µs). A call
    it refuses is checked again by nameko's own code, so the caller gets nameko's ``IncorrectSignature``
    (a ``BadRequest``) with the very message it always had; ``follow_wrapped=False`` reads the method as
    ``getcallargs`` does (a wrapper's own parameters, not those of the function it wraps)."""

    rpc_consumer = RpcConsumer()

    def setup(self) -> None:
        super().setup()
        self._signature = signature_of(self.container.service_cls, self.method_name)

    def check_signature(self, args: Any, kwargs: Any) -> None:
        try:
            self._signature.bind(None, *args, **kwargs)  # None: the unbound method's ``self``, as nameko passes
        except TypeError:
            super().check_signature(args, kwargs)
