"""Classic or quorum: the arguments of every queue the kit and nameko declare, chosen by one setting.

``QUEUE_TYPE`` (nameko config, ``deploy/config.yml``; the environment for the command-line tools):
``classic`` (the default: one broker, ``make run``) or ``quorum`` (a RabbitMQ cluster: every service,
event-handler, retry and dead-letter queue replicated on a majority of nodes). RPC reply queues stay
classic whatever the setting: they are exclusive to one caller, which quorum queues cannot be.

On quorum (RabbitMQ ≥ 3.10) each kind of queue gets:
- a service's RPC queue and its event handlers' queues: ``x-delivery-limit`` (``QUEUE_DELIVERY_LIMIT``,
  default 20): a message redelivered that often (its consumer died with it each time: a poison message)
  is dead-lettered instead of looping for ever. From a handler queue it goes, at least once, to the
  service's ``careloop.dead.<service>`` (``kit.deadletters`` lists and replays it: the broker's own
  ``x-death`` header names the queue it came from). An RPC request is dropped: its caller times out and
  retries under its idempotency key, as after any lost request.
- the retry delay queues (``kit.handlers``): the same per-queue TTL and dead-lettering back to the handler's
  queue as on classic queues (quorum queues honour ``x-message-ttl`` from 3.10; every message of a delay
  queue has the same TTL, so the one at the head always expires first), made at-least-once
  (``x-dead-letter-strategy``, which needs ``x-overflow: reject-publish``) so that a node failing while a
  message moves back cannot lose it.
- the dead-letter queues: replicated, nothing else.
Not used by CareLoop and not available on quorum queues: priorities, exclusive or auto-delete queues,
global QoS.

A queue's type cannot change once declared (the broker refuses a redeclaration with other arguments):
moving a running system from classic to quorum is a migration, deploy/RUNBOOK.md "Classic to quorum".
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

CLASSIC, QUORUM = "classic", "quorum"
DEFAULT_DELIVERY_LIMIT = 20


def queue_type(config: Mapping[str, Any] | None = None) -> str:
    """The configured type: the nameko config's ``QUEUE_TYPE``, else the environment's, else classic."""
    value = (config or {}).get("QUEUE_TYPE") or os.environ.get("QUEUE_TYPE") or CLASSIC
    value = str(value).strip().lower()
    if value not in (CLASSIC, QUORUM):
        raise ValueError(f"QUEUE_TYPE must be classic or quorum, not {value!r}")
    return value


def delivery_limit(config: Mapping[str, Any] | None = None) -> int:
    return int((config or {}).get("QUEUE_DELIVERY_LIMIT") or os.environ.get("QUEUE_DELIVERY_LIMIT")
               or DEFAULT_DELIVERY_LIMIT)


def consumer_arguments(config: Mapping[str, Any] | None, dead_letter_queue: str | None) -> dict[str, Any]:
    """A service's RPC queue (``dead_letter_queue`` None) or an event handler's queue."""
    if queue_type(config) == CLASSIC:
        return {}
    arguments: dict[str, Any] = {"x-queue-type": QUORUM, "x-delivery-limit": delivery_limit(config)}
    if dead_letter_queue:
        arguments.update({"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead_letter_queue,
                          "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"})
    return arguments


def delay_arguments(config: Mapping[str, Any] | None, delay_ms: int) -> dict[str, Any]:
    """A retry delay queue: messages wait ``delay_ms``, then go back by their routing key."""
    arguments: dict[str, Any] = {"x-message-ttl": delay_ms, "x-dead-letter-exchange": ""}
    if queue_type(config) == QUORUM:
        arguments.update({"x-queue-type": QUORUM, "x-dead-letter-strategy": "at-least-once",
                          "x-overflow": "reject-publish"})
    return arguments


def parking_arguments(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """A service's dead-letter queue."""
    return {"x-queue-type": QUORUM} if queue_type(config) == QUORUM else {}
