"""The kit's contracts: errors cross RPC intact, schemas refuse bad input, cursors are opaque."""

from datetime import date, timedelta

import pytest
from nameko.exceptions import deserialize, serialize

from services.kit.errors import Conflict, Invalid, NotFound
from services.kit.schemas import decode_cursor, encode_cursor, load, page_limit
from services.members.schemas import EnrolmentSchema

VALID = {"full_name": "Li Na", "phone": "13900139000", "birth_date": "1985-02-03", "home_branch": "SH01"}


@pytest.mark.parametrize("error", [
    Invalid("Bad phone.", {"phone": ["Not a valid phone number."]}),
    NotFound("No member x."),
    Conflict("Duplicate.", details={"matches": [{"member_id": "m1", "matched_on": ["phone"]}]}),
])
def test_domain_errors_survive_nameko_serialisation(error):
    back = deserialize(serialize(error))
    assert type(back) is type(error)
    assert back.to_dict() == error.to_dict()


@pytest.mark.parametrize(("change", "field"), [
    ({"birth_date": (date.today() + timedelta(days=1)).isoformat()}, "birth_date"),
    ({"birth_date": "1899-12-31"}, "birth_date"),
    ({"nickname": "Nana"}, "nickname"),
    ({"full_name": "   "}, "full_name"),
    ({"gender": "robot"}, "gender"),
    ({"consents": {"sms": "maybe"}}, "consents"),
    ({"email": "not-an-email"}, "email"),
])
def test_enrolment_schema_refuses_bad_fields(change, field):
    with pytest.raises(Invalid) as raised:
        load(EnrolmentSchema(), {**VALID, **change})
    assert field in raised.value.fields


def test_enrolment_schema_requires_name_phone_birth_date_and_branch():
    with pytest.raises(Invalid) as raised:
        load(EnrolmentSchema(), {})
    assert set(raised.value.fields) == {"full_name", "phone", "birth_date", "home_branch"}


def test_enrolment_schema_fills_defaults():
    data = load(EnrolmentSchema(), VALID)
    assert data["consents"] == {"sms": False, "email": False, "wechat": False, "line": False, "marketing": False}
    assert data["gender"] == "undisclosed" and data["source"] == "desk"


def test_a_body_that_is_not_an_object_is_invalid():
    with pytest.raises(Invalid):
        load(EnrolmentSchema(), ["not", "an", "object"])


def test_cursor_round_trip_and_garbage():
    assert decode_cursor(encode_cursor({"t": "2026-01-01T00:00:00Z", "id": "x"})) == {
        "t": "2026-01-01T00:00:00Z", "id": "x"}
    assert decode_cursor(None) is None
    for garbage in ("%%%", "bm90LWpzb24", encode_cursor({"a": 1})[:-3] + "!!"):
        with pytest.raises(Invalid):
            decode_cursor(garbage)


@pytest.mark.parametrize("limit", [0, 101, -1, 1.5, "10", True])
def test_page_limit_refuses_out_of_range(limit):
    with pytest.raises(Invalid):
        page_limit(limit)


def test_page_limit_default():
    assert page_limit(None) == 20
    assert page_limit(100) == 100


@pytest.mark.parametrize(("body", "field"), [
    ({**VALID, "full_name": "Li\x00Na"}, "full_name"),
    ({**VALID, "consents": {"sms\x00": True}}, "consents"),
    ({**VALID, "tags": ["a", "b\x00"]}, "tags"),
])
def test_a_nul_anywhere_in_input_is_invalid_before_the_database_sees_it(body, field):
    # PostgreSQL refuses NUL in text (a 500 from deep inside a command); SQLite would store it
    with pytest.raises(Invalid) as raised:
        load(EnrolmentSchema(), body)
    assert field in raised.value.fields
    assert "NUL" in str(raised.value)
