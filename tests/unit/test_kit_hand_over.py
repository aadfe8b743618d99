"""How the kit's queue consumer hands a message to its entrypoint: on the consumer's own thread while a worker
can be spawned without waiting, in a thread of its own otherwise (kit.consumer)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import eventlet
from eventlet.greenpool import GreenPool

from services.kit.consumer import QueueConsumer

MESSAGE = SimpleNamespace(delivery_info={"routing_key": "echo.echo"})


class Entrypoint:
    def __init__(self, fails: bool = False) -> None:
        self.fails = fails
        self.handed: list[tuple[Any, Any]] = []

    def handle_message(self, body: Any, message: Any) -> None:
        self.handed.append((body, eventlet.getcurrent()))
        if self.fails:
            raise ValueError("cannot take it")


def consumer_with_pool(pool: GreenPool) -> tuple[QueueConsumer, list[Any]]:
    spawned: list[Any] = []
    consumer = QueueConsumer()
    consumer.container = SimpleNamespace(_worker_pool=pool,
                                         spawn_managed_thread=lambda fn, identifier=None: spawned.append((fn, identifier)))
    return consumer, spawned


def test_with_room_in_the_pool_the_message_is_handed_over_at_once_on_the_consumers_thread() -> None:
    consumer, spawned = consumer_with_pool(GreenPool(2))
    entrypoint = Entrypoint()
    consumer.handle_message(entrypoint, {"args": []}, MESSAGE)
    assert entrypoint.handed == [({"args": []}, eventlet.getcurrent())]
    assert spawned == []


def test_with_the_pool_full_the_hand_over_waits_in_a_thread_of_its_own() -> None:
    pool = GreenPool(1)
    busy = pool.spawn(eventlet.sleep, 10)
    try:
        consumer, spawned = consumer_with_pool(pool)
        entrypoint = Entrypoint()
        consumer.handle_message(entrypoint, {"args": []}, MESSAGE)
        assert entrypoint.handed == []  # the consumer's thread did not wait for a worker
        [(hand_over, identifier)] = spawned
        assert identifier == "Entrypoint.handle_message[echo.echo]"
        hand_over()
        assert [body for body, _ in entrypoint.handed] == [{"args": []}]
    finally:
        busy.kill()


def test_a_message_its_entrypoint_cannot_take_is_parked_from_a_thread_of_its_own() -> None:
    consumer, spawned = consumer_with_pool(GreenPool(2))
    parked: list[Any] = []
    consumer._park = lambda message, why, exc: parked.append((message, why, type(exc)))
    consumer.handle_message(Entrypoint(fails=True), {"args": []}, MESSAGE)
    assert parked == []  # a park waits for the broker's confirm: never on the consumer's thread
    [(park, identifier)] = spawned
    park()
    assert parked == [(MESSAGE, "could not be handed to its entrypoint", ValueError)]
