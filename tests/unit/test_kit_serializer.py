"""The kit's serializer: every value crosses exactly as with kombu's json (or fails as it did), faster."""

from __future__ import annotations

import dataclasses
import enum
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import kombu.serialization
import pytest
from kombu.utils import json as kombu_json
from nameko import serialization
from nameko.exceptions import deserialize, serialize

from services.kit import errors
from services.kit.config import load_config
from services.kit.serializer import CONTENT_TYPE, NAME, NAMEKO_CONFIG, dumps, loads

REPO = Path(__file__).resolve().parents[2]


def _domain_errors(cls: type = errors.DomainError) -> list[type]:
    """Every domain error a service can raise (the gateway's own, e.g. the console's CSRF refusal, never
    cross RPC)."""
    found = []
    for sub in cls.__subclasses__():
        found += [sub] if sub.__module__.startswith("services.") else []
        found += _domain_errors(sub)
    return found


class Tier(enum.IntEnum):
    SILVER = 1


class Channel(enum.StrEnum):
    SMS = "sms"


class Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Member:
    member_id: str


# what RPC answers look like: marshmallow dumps (ISO strings, integers, None, nested lists), unicode names
ANSWER = {"member_id": "3f2b8c1e-9d4a-4e6f-8a2b-1c3d5e7f9a0b", "full_name": "李娜 🌸", "tier": "gold",
          "balance": 1200, "amount_minor": -350, "currency": "CNY", "email": None, "active": True,
          "enrolled_at": "2026-01-02T03:04:05.123456+00:00", "birth_date": "1985-02-03",
          "consents": {"sms": True, "email": False}, "tags": [], "visits": [{"visit_id": "v1", "items": [
              {"sku": "CLEAN", "paid_minor": 30000}]}], "next": None, "quote": 'he said "hi"\n\t\\', "zero": 0.0}

VALUES = [
    ANSWER,
    {"args": (1, 2, {"rule": "activity", "branch": "SH01"}), "kwargs": {"idempotency_key": "k-1"}},
    {"result": ANSWER, "error": None},
    [1.5, -0.0, 1e300, 2 ** 63 - 1, -(2 ** 63), 2 ** 64 - 1],
    # the values kombu's json wraps in {"__type__": ..., "__value__": ...} and gives back as themselves
    {"at": datetime(2026, 3, 4, 5, 6, 7, 890, tzinfo=UTC), "naive": datetime(2026, 3, 4, 5, 6, 7),
     "shanghai": datetime(2026, 3, 4, 13, 0, tzinfo=timezone(timedelta(hours=8)))},
    {"day": date(2026, 3, 4), "clock": time(8, 30), "price": Decimal("12.30"), "id": uuid.UUID(int=7)},
    {"text": b"plain bytes", "binary": b"\xff\x00\x80"},
    # what kombu's json changes, changed the same way: non-str keys become strings, tuples lists
    {1: "one", None: "none", False: "no", 2.5: "x"},
    ((1, 2), [3, (4,)]),
    # enums that are ints or strings cross as their values; non-finite floats and huge ints as before
    {"tier": Tier.SILVER, "channel": Channel.SMS},
    {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")},
    {"huge": 2 ** 70, "negative": -(2 ** 65)},
    {"__type__": "not an envelope", "other": 1},
    "", "just a string", 0, None, True, [],
]


def _same(a: object, b: object) -> bool:
    """Equal values of equal types, all the way down (NaN equal to NaN)."""
    return repr(a) == repr(b) and type(a) is type(b)


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_every_value_crosses_as_it_did_with_kombus_json(value):
    today = kombu_json.loads(kombu_json.dumps(value))
    assert _same(loads(dumps(value)), today)
    # the same wire format both ways: a process on nameko's default json reads ours, and we read its
    assert _same(kombu_json.loads(dumps(value)), today)
    assert _same(loads(kombu_json.dumps(value).encode()), today)


def test_deeper_nesting_than_orjson_allows_still_crosses():
    value: list = []
    for _ in range(300):
        value = [value]
    assert loads(dumps(value)) == kombu_json.loads(kombu_json.dumps(value))


@pytest.mark.parametrize("value", [Member("m1"), Colour.RED, object(), {"nested": {1, 2}}],
                         ids=["dataclass", "plain enum", "object", "set"])
def test_what_kombus_json_refused_is_refused_loudly(value):
    with pytest.raises(TypeError):
        kombu_json.dumps(value)
    with pytest.raises(TypeError):
        dumps(value)


@pytest.mark.parametrize("body", [b'{"a": NaN}', b'[1e400, -1e400]', b'[123456789012345678901234567890, 0.12345678901234567890123]',
                                  b'{"n": -9223372036854775809, "m": 18446744073709551616}', b'["\\ud800"]', '{"a": [1, "x"]}', memoryview(b'{"b": 2}'),
                                  b'{"at": {"__type__": "date", "__value__": "2026-03-04"}}'])
def test_bodies_pythons_json_reads_are_read(body):
    raw = body.tobytes() if isinstance(body, memoryview) else body
    assert _same(loads(body), kombu_json.loads(raw))


@pytest.mark.parametrize("error_cls", _domain_errors(), ids=lambda cls: cls.__name__)
def test_every_domain_error_crosses_as_itself(error_cls):
    error = error_cls("The phone number is taken; use another one.", {"phone": ["Already used by a member."]},
                      {"matches": [{"member_id": "m1", "matched_on": ["phone"]}], "retry_after": 5})
    payload = {"result": None, "error": serialize(error)}
    back = deserialize(loads(dumps(payload))["error"])
    today = deserialize(kombu_json.loads(kombu_json.dumps(payload))["error"])
    assert type(back) is error_cls and back.to_dict() == today.to_dict()
    assert back.message == error.message and back.fields == error.fields


def test_nameko_registers_it_from_the_config_and_replies_in_it():
    serializer, accept = serialization.setup(NAMEKO_CONFIG)
    assert (serializer, accept) == (NAME, [NAME])
    content_type, encoding, body = kombu.serialization.dumps({"a": 1}, NAME)
    assert (content_type, encoding) == (CONTENT_TYPE, "utf-8")
    # nameko answers an RPC in the serializer registered for the request's content type
    assert kombu.serialization.registry.type_to_name[content_type] == NAME
    assert kombu.serialization.loads(body, content_type, encoding, accept={CONTENT_TYPE}) == {"a": 1}


def test_the_deployed_config_chooses_it(monkeypatch):
    monkeypatch.delenv("SERIALIZER", raising=False)
    config = load_config(REPO / "deploy" / "config.yml")
    assert {key: config[key] for key in NAMEKO_CONFIG} == NAMEKO_CONFIG
