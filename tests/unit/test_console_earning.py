"""The earning rules form, without a browser: what it sends points is the rules a version stored already and
those whose boxes changed, each as the programme file writes it."""

from __future__ import annotations

from werkzeug.datastructures import MultiDict

from gateway.console.earning import boxes, change
from services.points.earning_rules import FIELDS
from services.points.rules.programme import DEFAULT_PROGRAMME


def _rules() -> dict:
    programme = DEFAULT_PROGRAMME.as_dict()
    return {name: programme["tier_multipliers_bp" if name == "tier_multipliers" else name] for name in FIELDS}


def _drawn(rules: dict) -> MultiDict:
    """The form as the page draws it: every box with the rule in force, the kinds that earn ticked."""
    form = MultiDict([(box.name, box.value) for group in boxes(rules, None).values() for box in group])
    for field in ("visit_kinds", "activity_kinds"):
        for kind in rules[field]:
            form.add(field, kind)
    return form


def test_an_untouched_form_sends_nothing_and_a_changed_box_sends_its_rule_only():
    rules = _rules()
    form = _drawn(rules)
    assert form["tier_multipliers.gold"] == "1.5"
    assert change(rules, [], form) == {}
    form["spend_points_per_unit"] = "4"
    form["tier_multipliers.gold"] = "1.75"
    form.setlist("visit_kinds", ["first"])
    assert change(rules, [], form) == {
        "spend_points_per_unit": 4, "visit_kinds": ["first"],
        "tier_multipliers": {"standard": "1", "silver": "1.2", "gold": "1.75", "diamond": "2"}}


def test_a_stored_rule_is_sent_again_and_what_cannot_be_read_goes_as_typed_for_points_to_mark():
    rules = _rules()
    form = _drawn(rules)
    form["review_points.neutral"] = "ten"
    sent = change(rules, ["visit_points"], form)
    assert sent["visit_points"] == 10 and sent["review_points"]["neutral"] == "ten"
    assert sent["review_points"]["very_dissatisfied"] == 0
