"""The merge rules of records (``services/records/membership.py``) without broker or database."""

from __future__ import annotations

import pytest

from services.kit.errors import Conflict
from services.records.membership import chart_union, check_may_book, profile_union

PENICILLIN = {"substance": "Penicillin", "severity": "severe"}
LATEX = {"substance": "Latex", "severity": "mild"}
EMPTY = {"medical_history": [], "allergies": [], "family_history": [], "medication": [], "notes": None}


def test_profile_union_keeps_every_entry_of_both_once_and_appends_notes_under_a_marker():
    survivor = {**EMPTY, "allergies": [PENICILLIN], "notes": "Prefers mornings"}
    merged = {**EMPTY, "allergies": [LATEX, PENICILLIN, LATEX], "notes": "Anxious"}
    combined, brought = profile_union(survivor, merged, "--- marker ---")
    assert combined["allergies"] == [PENICILLIN, LATEX]
    assert brought["allergies"] == [LATEX]
    assert combined["notes"] == "Prefers mornings\n\n--- marker ---\nAnxious"
    assert brought["notes"] == "--- marker ---\nAnxious"


@pytest.mark.parametrize(("survivor_notes", "merged_notes", "notes", "block"), [
    (None, "Anxious", "--- marker ---\nAnxious", "--- marker ---\nAnxious"),
    ("Prefers mornings", None, "Prefers mornings", None),
    (None, None, None, None),
])
def test_profile_union_notes_never_dropped(survivor_notes, merged_notes, notes, block):
    combined, brought = profile_union({**EMPTY, "notes": survivor_notes}, {**EMPTY, "notes": merged_notes},
                                      "--- marker ---")
    assert (combined["notes"], brought["notes"]) == (notes, block)


def test_chart_union_adds_the_duplicates_teeth_and_the_later_chart_wins_a_tooth_on_both():
    survivor = {"36": {"caries": ["M"]}, "11": {"crown": True}}
    merged = {"21": {"state": "missing"}, "11": {"root_canal": True}}
    older, brought = chart_union(survivor, merged, merged_is_newer=False)
    assert older == {**survivor, "21": {"state": "missing"}}
    assert brought == {"21": {"before": None, "after": {"state": "missing"}}}
    newer, brought = chart_union(survivor, merged, merged_is_newer=True)
    assert newer["11"] == {"root_canal": True}
    assert brought["11"] == {"before": {"crown": True}, "after": {"root_canal": True}}


@pytest.mark.parametrize("status", ["frozen", "closed"])
def test_frozen_and_closed_memberships_take_no_booking(status):
    with pytest.raises(Conflict) as refused:
        check_may_book(status)
    assert status in refused.value.message
    check_may_book("active")
    check_may_book(None)
