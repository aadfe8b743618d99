"""The kit's cached check of an RPC call's arguments refuses exactly what nameko's refuses, with its message."""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any

import pytest
from nameko.exceptions import IncorrectSignature
from nameko.rpc import Rpc as NamekoRpc

from services.kit.consumer import Rpc, signature_of


def _wrapped(fn: Any) -> Any:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


class Shapes:
    def plain(self, member_id, amount_minor=0): ...
    def keywords_only(self, member_id, *, reason): ...
    def anything(self, *args, **kwargs): ...
    def positional_only(self, member_id, /, amount_minor): ...
    def nothing(self): ...

    @_wrapped
    def wrapped(self, member_id): ...


CALLS = [
    ("plain", ["m1"], {}), ("plain", ["m1", 5], {}), ("plain", [], {"member_id": "m1"}), ("plain", [], {}),
    ("plain", ["m1", 5, 6], {}), ("plain", ["m1"], {"member_id": "m2"}), ("plain", ["m1"], {"colour": "red"}),
    ("keywords_only", ["m1"], {"reason": "x"}), ("keywords_only", ["m1", "x"], {}), ("keywords_only", ["m1"], {}),
    ("anything", [], {}), ("anything", [1, 2], {"a": 3}),
    ("positional_only", ["m1", 5], {}), ("positional_only", ["m1"], {"amount_minor": 5}),
    ("positional_only", [], {"member_id": "m1", "amount_minor": 5}),
    ("nothing", [], {}), ("nothing", [1], {}), ("nothing", [], {"x": 1}),
    ("wrapped", [], {}), ("wrapped", [1, 2, 3], {"x": 1}),
    ("plain", 7, {}), ("plain", ["m1"], ["not", "a", "dict"]),
]


def _outcome(check: Any, args: Any, kwargs: Any) -> str | None:
    try:
        check(args, kwargs)
    except IncorrectSignature as refused:
        return str(refused)
    return None


@pytest.mark.parametrize(("method", "args", "kwargs"), CALLS)
def test_a_call_is_accepted_or_refused_as_nameko_would_with_the_same_message(method: str, args: Any,
                                                                            kwargs: Any) -> None:
    entrypoint = Rpc()
    entrypoint.container = SimpleNamespace(service_cls=Shapes)
    entrypoint.method_name = method
    entrypoint._signature = signature_of(Shapes, method)
    expected = _outcome(functools.partial(NamekoRpc.check_signature, entrypoint), args, kwargs)
    assert _outcome(entrypoint.check_signature, args, kwargs) == expected


def test_a_wrapped_method_is_checked_against_its_wrapper_as_nameko_does() -> None:
    entrypoint = Rpc()
    entrypoint.container = SimpleNamespace(service_cls=Shapes)
    entrypoint.method_name = "wrapped"
    entrypoint._signature = signature_of(Shapes, "wrapped")
    entrypoint.check_signature([1, 2, 3], {"x": 1})  # the wrapper takes anything; the wrapped function decides
