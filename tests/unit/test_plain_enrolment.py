"""``members.schemas.plain_enrolment`` (an import's rows checked without marshmallow's machinery) is held equal to
``EnrolmentSchema``: over the sample files' rows and each rule's boundaries, it either answers what the schema
loads or answers None (the schema then loads the row); and a plain row does get its answer (else the import would
quietly pay the schema's cost again)."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from typing import Any

import pytest

from services.interfaces.imports import columns as cols
from services.kit.errors import Invalid
from services.kit.schemas import load
from services.members.schemas import EnrolmentSchema, plain_enrolment
from tests import import_samples

SCHEMA = EnrolmentSchema()
BASE = {"source": "import", "full_name": "王伟伟", "phone": "13900000000", "birth_date": "1950-01-01",
        "gender": "male", "home_branch": "SH01"}
TODAY = date.today()
PINNED = "f4f4b98723f83dd6"


def schema_load(data: Any) -> dict[str, Any] | None:
    try:
        return load(SCHEMA, data)
    except Invalid:
        return None


def sample_rows() -> list[dict[str, Any]]:
    columns = cols.resolve(list(import_samples.HEADERS))
    bad = [(3, "phone"), (5, "birth_date"), (7, "date_text")]
    return [cols.enrolment(cols.cells_of(columns, row), None, None)[0]
            for row in import_samples.members(300, bad=bad)]


VALUES: dict[str, list[Any]] = {
    "full_name": ["", " ", "  \t", "a", "a" * 100, "a" * 101, " 李 ", None, 5, b"name", "a\x00b", ["a"]],
    "phone": ["", "12", "123", "1" * 32, "1" * 33, "+8613900000000", None, 13900000000, "139\x00"],
    "birth_date": ["1950-01-01", "1900-01-01", "1899-12-31", TODAY.isoformat(), (TODAY + timedelta(days=1)).isoformat(),
                   "19500101", "1950-1-1", "1950-02-30", "三月五日", "", None, 19500101, date(1950, 1, 1),
                   "1950-01-01T00:00:00", "2000-W01-1"],
    "gender": ["male", "female", "other", "undisclosed", "Male", "", None, 1],
    "home_branch": ["SH01", "", "X" * 16, "X" * 17, None, "sh01", "S\x00"],
    "email": [None, "a@example.com", "not-an-email", "", "a@b", "a@example.com\x00", 5, "Ab.C@例子.中国"],
    "preferred_language": [None, "en", "zh-Hans", "fr", "", 3],
    "source": ["import", "desk", "his", "self_signup", "nope", None, ""],
    "referral_code": [None, "", "ABC123", "A" * 16, "A" * 17, 12, "A\x00"],
    "wechat_openid": [None, "", "o" * 64, "o" * 65, 1],
    "line_user_id": [None, "U" * 64, "U" * 65, []],
    "id_document": [None, {"type": "passport", "number": "E1234567"}, {"type": "cn_resident_id", "number": "x"},
                    {"type": "nope", "number": "1"}, {"type": "passport", "number": ""},
                    {"type": "passport", "number": "1" * 41}, {"type": "passport"},
                    {"type": "passport", "number": "1", "extra": 1}, "passport:1", {"type": "passport", "number": 1}],
    "consents": [{"sms": True}, {}, None],
    "unknown_field": ["x"],
}


def variants() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [dict(BASE), {k: v for k, v in BASE.items() if k != "source"}]
    for name, values in VALUES.items():
        rows += [{**BASE, name: value} for value in values]
        if name in BASE:
            rows.append({k: v for k, v in BASE.items() if k != name})
    return rows


@pytest.mark.parametrize("data", variants() + sample_rows() + [None, [], "row", {"full_name": "x"}])
def test_plain_enrolment_answers_what_the_schema_loads_or_nothing(data: Any) -> None:
    plain = plain_enrolment(data)
    if plain is not None:
        assert plain == schema_load(data)


def test_every_valid_sample_row_is_answered_without_the_schema() -> None:
    loaded = [(row, schema_load(row)) for row in sample_rows()]
    valid = [(row, expected) for row, expected in loaded if expected is not None]
    assert len(valid) >= 297  # all but the three rows made bad
    assert all(plain_enrolment(row) == expected for row, expected in valid)


@pytest.mark.parametrize("data", [
    {**BASE, "email": "a@example.com"}, {**BASE, "preferred_language": "zh-Hans"}, {**BASE, "referral_code": "ABC"},
    {**BASE, "id_document": {"type": "passport", "number": "E1234567"}}, {**BASE, "birth_date": "1900-01-01"},
    {k: v for k, v in BASE.items() if k not in {"gender", "source"}},
])
def test_plain_variants_are_answered_as_the_schema_loads_them(data: dict[str, Any]) -> None:
    assert plain_enrolment(data) is not None
    assert plain_enrolment(data) == schema_load(data)


def test_the_default_consents_are_a_copy_of_their_own() -> None:
    first, second = plain_enrolment(dict(BASE)), plain_enrolment(dict(BASE))
    first["consents"]["sms"] = True
    assert second["consents"]["sms"] is False


def _shape(schema: Any) -> list[Any]:
    """What decides ``schema``'s loads: each field's type, presence, nulls, default and validators; its hooks."""
    shape: list[Any] = [sorted((name, str(hook)) for name, hook in schema._hooks.items() if hook)]
    for name, field in schema.fields.items():
        default = field.load_default() if callable(field.load_default) else field.load_default
        shape.append((name, type(field).__name__, field.required, field.allow_none, repr(default),
                      [repr(validator) for validator in field.validators],
                      _shape(field.schema) if hasattr(field, "nested") else None))
    return shape


def test_the_schema_is_the_one_plain_enrolment_was_written_for() -> None:
    """A changed ``EnrolmentSchema`` (a field, a rule, a default) needs ``plain_enrolment`` changed the same way:
    write the rule there too, check the tests above, then pin the new shape here."""
    digest = hashlib.sha256(repr(_shape(SCHEMA)).encode()).hexdigest()[:16]
    assert digest == PINNED, f"EnrolmentSchema changed ({digest}): change plain_enrolment the same way, then pin it"
