"""kit.peers: calling another service with a deadline; silence and absence are Unavailable, refusals are
the peer's own errors."""

from __future__ import annotations

import eventlet
import pytest

from services.kit import NotFound, Service, rpc
from services.kit.errors import Unavailable
from services.kit.peers import Peer


class Slow(Service):
    name = "slow_peer"

    @rpc
    def nap(self, seconds: float) -> str:
        eventlet.sleep(seconds)
        return "awake"

    @rpc
    def find(self, key: str) -> dict:
        raise NotFound(f"No {key}.")


class Caller(Service):
    name = "peer_caller"
    slow = Peer("slow_peer", timeout=0.5)
    absent = Peer("nobody_runs_this")

    @rpc
    def call(self, target: str, method: str, *args) -> dict:
        peer = self.slow if target == "slow" else self.absent
        try:
            return {"answer": getattr(peer, method)(*args)}
        except Unavailable as error:
            return {"unavailable": str(error)}


@pytest.fixture
def caller(start_service, rpc, databases):
    unused = databases.fresh("sqlite", "notifications")  # neither keeps anything; the harness wants a database
    start_service(Slow, database_url=unused)
    start_service(Caller, database_url=unused)
    return rpc().peer_caller


def test_an_answer_in_time_is_the_answer(caller):
    assert caller.call("slow", "nap", 0.01) == {"answer": "awake"}


def test_a_peer_that_does_not_answer_in_time_is_unavailable(caller):
    assert "did not answer within 0.5 s" in caller.call("slow", "nap", 2)["unavailable"]


def test_a_peer_that_is_not_running_is_unavailable(caller):
    assert "No instance of nobody_runs_this" in caller.call("absent", "anything")["unavailable"]


def test_a_method_the_peer_does_not_offer_is_unavailable(caller):
    assert "not offered" in caller.call("slow", "segment_members")["unavailable"]


def test_the_peers_refusal_arrives_as_itself(caller):
    with pytest.raises(NotFound):
        caller.call("slow", "find", "member 7")
