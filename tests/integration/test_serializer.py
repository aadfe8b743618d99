"""The kit's serializer across a real broker: answers and domain errors arrive as themselves, whether the
caller speaks it or nameko's default json (the same wire format)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ClusterRpcProxy

from services.kit import Service, errors, rpc
from tests.unit.test_kit_serializer import ANSWER, _domain_errors

TYPED = {"at": datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC), "day": date(2026, 3, 4), "price": Decimal("1.10"),
         "id": uuid.UUID(int=42), "raw": b"\xff\x00", "keys": {1: "one"}, "huge": 2 ** 70, "nan": float("nan")}


class Answers(Service):
    name = "serializer_answers"

    @rpc
    def answer(self, value: Any = None) -> Any:
        return {"answer": ANSWER, "echo": value}

    @rpc
    def typed(self) -> dict[str, Any]:
        return TYPED

    @rpc
    def unserializable(self) -> Any:
        return {"answer": object()}

    @rpc
    def fail(self, kind: str) -> None:
        error_cls = getattr(errors, kind)
        raise error_cls("Cannot do that now.", {"field": ["Why not."]}, {"member_id": "m1", "matches": ["phone"]})


@pytest.fixture
def answers(start_service):
    return start_service(Answers, database_url="sqlite://")  # no Database: any URL will do


@pytest.mark.parametrize("caller_serializer", ["careloop-json", "json"])
def test_answers_and_domain_errors_cross_a_broker_intact(answers, rpc, amqp_uri, caller_serializer):
    assert answers.serializer == "careloop-json"  # chosen by the config, as deploy/config.yml does
    config = {"AMQP_URI": amqp_uri}
    if caller_serializer == "careloop-json":
        config = answers.config
    with ClusterRpcProxy(config, timeout=15) as proxy:
        sent = {"args": [1, "二", None, True], "when": datetime(2026, 1, 2, tzinfo=UTC)}
        assert proxy.serializer_answers.answer(sent) == {"answer": ANSWER, "echo": sent}
        typed = proxy.serializer_answers.typed()
        assert repr(typed) == repr({**TYPED, "keys": {"1": "one"}})  # as kombu's json: int keys become strings
        for error_cls in _domain_errors():
            with pytest.raises(error_cls) as raised:
                proxy.serializer_answers.fail(error_cls.__name__)
            assert raised.value.fields == {"field": ["Why not."]}
            assert raised.value.details == {"member_id": "m1", "matches": ["phone"]}


@pytest.mark.parametrize("confirms", [False, True])
def test_an_answer_that_cannot_be_encoded_is_an_error_and_the_service_goes_on(start_service, rpc, confirms):
    # the kit's replies (kit.consumer.RpcConsumer), with and without waiting for the broker's confirm
    start_service(Answers, database_url="sqlite://", RPC_REPLY_CONFIRMS=confirms)
    proxy = rpc()
    with pytest.raises(RemoteError) as raised:
        proxy.serializer_answers.unserializable()
    assert raised.value.exc_type == "UnserializableValueError"
    assert proxy.serializer_answers.answer("again") == {"answer": ANSWER, "echo": "again"}
