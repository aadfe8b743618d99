"""The programme settings form: typed thresholds to the programme document and back, and the members
service's field errors put back on the boxes they are about."""

from __future__ import annotations

import pytest

from gateway.console import programme_form
from services.members.rules.programme import DEFAULT_PROGRAMME, programme_document

DOCUMENT = programme_document(DEFAULT_PROGRAMME)


def test_the_boxes_show_the_thresholds_in_force_in_major_units_and_empty_where_a_path_does_not_apply():
    rows = programme_form.boxes(DOCUMENT)
    assert [row[0].tier for row in rows] == ["silver", "gold", "diamond"]  # the entry tier has no boxes
    silver = {box.path: box.value for box in rows[0]}
    assert silver == {"spend_minor": "5000", "single_top_up_minor": "3000", "points_12m": "5000", "visits_12m": "6"}
    assert programme_form.shown(None, "money") == "" and programme_form.shown(123_456, "money") == "1234.56"
    typed = programme_form.boxes(DOCUMENT, {"silver.spend_minor": "abc"})
    assert typed[0][0].value == "abc"  # what was typed stays, even when it cannot be read


@pytest.mark.parametrize(("text", "kind", "expected"), [
    ("1000", "money", 100_000), ("1,000.50", "money", 100_050), ("", "money", None), ("  ", "count", None),
    ("12", "count", 12), ("0", "count", 0),
])
def test_typed_thresholds_become_minor_units_without_a_float(text, kind, expected):
    path = "spend_minor" if kind == "money" else "visits_12m"
    document, problems = programme_form.with_thresholds(DOCUMENT, {f"gold.{path}": text})
    assert problems == {} and document["tiers"][2]["thresholds"][path] == expected
    assert DOCUMENT["tiers"][2]["thresholds"][path] != "changed"  # the document given is not touched


@pytest.mark.parametrize(("text", "kind", "problem"), [
    ("lots", "money", "not_a_number"), ("-5", "money", "not_negative"), ("10.005", "money", "money_two_decimals"),
    ("1e12", "money", "money_two_decimals"), ("2.5", "count", "whole_number"), ("-1", "count", "not_negative"),
])
def test_unreadable_boxes_are_named_with_a_message_id(text, kind, problem):
    path = "single_top_up_minor" if kind == "money" else "points_12m"
    _document, problems = programme_form.with_thresholds(DOCUMENT, {f"silver.{path}": text})
    assert problems == {f"silver.{path}": problem}


def test_every_box_left_out_of_the_form_means_the_path_does_not_apply():
    document, problems = programme_form.with_thresholds(DOCUMENT, {})
    assert problems == {}
    assert all(value is None for tier in document["tiers"][1:] for value in tier["thresholds"].values())
    assert document["tiers"][1]["names"] == DOCUMENT["tiers"][1]["names"]  # the rest goes back as it came


def test_service_errors_land_on_the_boxes_they_name_and_the_rest_is_listed():
    on_boxes, rest = programme_form.field_errors(DOCUMENT, {
        "tiers.2.thresholds": ["Each path must need more than the tier below."],
        "programme.tiers.1.thresholds.spend_minor": {"0": ["Not a valid integer."]},
        "currency": ["Thresholds must be in the group's currency, CNY."],
    })
    assert on_boxes["gold.spend_minor"] == on_boxes["gold.visits_12m"] == ["Each path must need more than the tier below."]
    assert on_boxes["silver.spend_minor"] == ["Not a valid integer."]
    assert rest == ["currency: Thresholds must be in the group's currency, CNY."]


def test_nested_schema_errors_land_on_their_boxes_too():
    on_boxes, rest = programme_form.field_errors(DOCUMENT, {
        "programme": {"tiers": {3: {"thresholds": {"visits_12m": ["Not a valid integer."]}}}}})
    assert on_boxes == {"diamond.visits_12m": ["Not a valid integer."]} and rest == []
