"""Service-to-service calls with a deadline (kit.peers): an answer, an error as itself, or Unavailable."""

from __future__ import annotations

import eventlet
import pytest
from nameko.exceptions import BadRequest, IncorrectSignature

from services.kit import NotFound, Service, rpc
from services.kit.errors import Unavailable
from services.kit.peers import Peer


class Echo(Service):
    name = "peer_echo"

    @rpc
    def echo(self, value: str) -> str:
        if value == "missing":
            raise NotFound("No such thing.")
        return value

    @rpc
    def slow(self) -> str:
        eventlet.sleep(8)
        return "late"


class Caller(Service):
    name = "peer_caller"
    echo = Peer("peer_echo")
    absent = Peer("peer_nobody")

    @rpc
    def ask(self, value: str) -> str:
        return self.echo.echo(value)

    @rpc
    def ask_slow(self) -> str:
        return self.echo.slow()

    @rpc
    def ask_absent(self) -> str:
        return self.absent.anything()


@pytest.fixture
def caller(start_service, rpc):
    # neither has a Database: any URL will do. The deadline leaves room for a first call on a busy machine
    # (0.5 s was not always enough) and is still far below the slow peer's 8 s.
    start_service(Echo, database_url="sqlite://", PEER_TIMEOUT=2)
    start_service(Caller, database_url="sqlite://", PEER_TIMEOUT=2)
    return rpc()


def test_a_peer_answers_and_its_domain_errors_arrive_as_themselves(caller):
    assert caller.peer_caller.ask("hello") == "hello"
    with pytest.raises(NotFound):
        caller.peer_caller.ask("missing")


def test_a_slow_or_absent_peer_gives_unavailable_not_a_hang(caller):
    with pytest.raises(Unavailable):
        caller.peer_caller.ask_slow()
    with pytest.raises(Unavailable):
        caller.peer_caller.ask_absent()


def test_a_call_with_wrong_arguments_is_refused_as_bad_request_and_the_service_goes_on(caller):
    with pytest.raises(IncorrectSignature) as refused:
        caller.peer_echo.echo("a", "b")
    assert str(refused.value) == "echo() takes 2 positional arguments but 3 were given"  # nameko's own words
    assert isinstance(refused.value, BadRequest)
    with pytest.raises(IncorrectSignature, match="unexpected keyword argument 'colour'"):
        caller.peer_echo.echo(value="a", colour="red")
    assert caller.peer_echo.echo(value="a") == "a"
