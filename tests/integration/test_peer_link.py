"""A peer call and its broker connection (kit.replies): a call waiting when the connection dies fails at once,
a call while there is none fails within a second, and calls work again within seconds of the link's return.

The caller reaches the machine's RabbitMQ through a ``TcpProxy`` (``tests.nodes``) that the test cuts; the
answering service is connected directly, so only the caller's side breaks.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlparse

import eventlet
import pytest
from nameko.containers import WorkerContext

from services.kit import Service, rpc
from services.kit.errors import Unavailable
from services.kit.peers import Peer
from tests.harness import wait_for
from tests.nodes import TcpProxy

DEADLINE = 20.0


class SlowEcho(Service):
    name = "peer_link_echo"

    @rpc
    def echo(self, value: str, pause: float = 0.0) -> str:
        eventlet.sleep(pause)
        return value


class Asker(Service):
    name = "peer_link_asker"
    echo = Peer("peer_link_echo")
    nobody = Peer("peer_link_nobody")


def peer_of(container: Any, name: str = "echo") -> Any:
    """The peer ``name`` as a worker of ``container`` sees it, called from the test's own thread."""
    peer = next(d for d in container.dependencies if isinstance(d, Peer) and d.attr_name == name)
    return peer.get_dependency(WorkerContext(container, None, next(iter(container.entrypoints)), data={}))


def outcome(call: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    started = time.monotonic()
    try:
        result = call(*args, **kwargs)
    except Unavailable as unavailable:
        result = unavailable
    return result, time.monotonic() - started


def answers(peer: Any) -> bool:
    try:
        return peer.echo("again") == "again"
    except Unavailable:
        return False


@pytest.fixture
def link(amqp_uri):
    url = urlparse(amqp_uri)
    proxy = TcpProxy(url.port or 5672, target_host=url.hostname)
    proxy.start()
    yield proxy, amqp_uri.replace(url.netloc, f"{url.username}:{url.password}@127.0.0.1:{proxy.port}")
    proxy.close()


def test_a_call_waiting_on_a_cut_link_fails_at_once_and_calls_work_again_after(start_service, link):
    proxy, through_proxy = link
    start_service(SlowEcho, database_url="sqlite://")
    asker = start_service(Asker, database_url="sqlite://", AMQP_URI=through_proxy, PEER_TIMEOUT=DEADLINE)
    peer = peer_of(asker)
    assert peer.echo("first") == "first"

    waiting = eventlet.spawn(outcome, peer.echo, "late", pause=5)
    eventlet.sleep(1)  # the request is out; its answer comes in 4 s
    proxy.cut()
    result, took = waiting.wait()
    assert isinstance(result, Unavailable)
    assert took < 3, f"the call waited {took:.1f} s for a reply that could not come"

    result, took = outcome(peer.echo, "while cut")  # waits a second for a connection (CONNECT_WAIT), not the deadline
    assert isinstance(result, Unavailable) and took < 2.5

    proxy.restore()
    wait_for(lambda: answers(peer), timeout=15)


def test_a_call_on_a_silent_link_ends_at_its_deadline_not_later(start_service, link):
    proxy, through_proxy = link
    start_service(SlowEcho, database_url="sqlite://")
    asker = start_service(Asker, database_url="sqlite://", AMQP_URI=through_proxy, PEER_TIMEOUT=2)
    peer = peer_of(asker)
    assert peer.echo("first") == "first"

    proxy.blackhole()
    result, took = outcome(peer.echo, "into the void")
    assert isinstance(result, Unavailable) and 1.5 < took < 4
    proxy.restore()
    wait_for(lambda: answers(peer), timeout=15)


def test_a_call_to_a_service_nobody_runs_fails_at_once_not_at_its_deadline(start_service, amqp_uri):
    asker = start_service(Asker, database_url="sqlite://", PEER_TIMEOUT=DEADLINE)
    result, took = outcome(peer_of(asker, "nobody").anything)
    assert isinstance(result, Unavailable)
    assert took < 2, f"an unknown service took {took:.1f} s to be told (the broker returns the request at once)"
