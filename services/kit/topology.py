"""Declare every event queue before any service publishes, so that no event finds nobody listening.

A topic exchange drops a message no queue is bound to. nameko declares a handler's queue only when
that handler's service starts, so an event published before the consumer's first start would be lost
(a new service added to a running suite, or services started in another order). Deployments run
``python -m services.kit.topology`` (``make run`` and the Kubernetes migration job do) to declare and
bind every handler queue of every service first, with the names and arguments nameko itself uses.
A gated handler's queue (``kit.gates``) is declared but not bound: its service binds it while it wants the
events, and an event nobody wants is meant to be dropped.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from typing import Any

from kombu import Connection, Exchange, Queue
from nameko.constants import PERSISTENT

from services.kit import queues
from services.kit.deadletters import dead_letter_queue_name
from services.kit.handlers import DEFAULT_RETRY_DELAYS, EventHandler, dead_letter_queue, retry_topology

SERVICE_CLASSES = (
    "services.interfaces.service:InterfacesService",
    "services.members.service:MembersService",
    "services.notifications.service:NotificationsService",
    "services.points.service:PointsService",
    "services.records.service:RecordsService",
)
"""Every CareLoop service that handles events (add a new service here)."""


def load(path: str) -> type:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def handler_queues(service_cls: type) -> list[tuple[str, str, str, bool]]:
    """(source service, event type, queue name, gated) of each event handler of ``service_cls``; a gated
    handler's queue is bound only while its service wants its events (``kit.gates``)."""
    found = []
    for method_name, method in inspect.getmembers(service_cls, inspect.isfunction):
        for entrypoint in getattr(method, "nameko_entrypoints", ()):
            if isinstance(entrypoint, EventHandler):
                queue = f"evt-{entrypoint.source_service}-{entrypoint.event_type}--{service_cls.name}.{method_name}"
                found.append((entrypoint.source_service, entrypoint.event_type, queue, entrypoint.gate is not None))
    return found


def declare(amqp_uri: str, service_classes: list[type], retry_delays: Any = DEFAULT_RETRY_DELAYS,
            config: Any = None) -> list[str]:
    """Declare exchanges, handler queues and bindings, delay and dead-letter queues; returns queue names.
    Classic or quorum as ``config`` (else the environment's ``QUEUE_TYPE``) says (``kit.queues``)."""
    declared = []
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        try:
            for delay in retry_delays:
                _exchange, queue = retry_topology(float(delay), config)
                queue(channel).declare()
            for service_cls in service_classes:
                dead_letter_queue(service_cls.name, config)(channel).declare()
                for source, event_type, name, gated in handler_queues(service_cls):
                    exchange = Exchange(f"{source}.events", type="topic", durable=True, delivery_mode=PERSISTENT)
                    arguments = queues.consumer_arguments(config, dead_letter_queue_name(service_cls.name))
                    if gated:  # declared, never bound here: the service binds it while it wants the events
                        exchange(channel).declare()
                        Queue(name, durable=True, auto_delete=False, exclusive=False,
                              queue_arguments=arguments)(channel).declare()
                    else:
                        Queue(name, exchange=exchange, routing_key=event_type, durable=True, auto_delete=False,
                              exclusive=False, queue_arguments=arguments)(channel).declare()
                    declared.append(name)
        finally:
            channel.close()
    return declared


def main() -> int:
    uri = os.environ.get("AMQP_URI", "pyamqp://guest:guest@127.0.0.1:5672/")
    names = declare(uri, [load(path) for path in SERVICE_CLASSES])
    print(f"declared {len(names)} event queues")
    return 0


if __name__ == "__main__":
    sys.exit(main())
