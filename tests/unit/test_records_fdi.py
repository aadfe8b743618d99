"""FDI notation and chart marks: which teeth, surfaces and sites exist; what marks do; clear refusals."""

import pytest

from services.kit.errors import Invalid
from services.records.rules import fdi
from services.records.rules.fdi import MarkError, apply_marks, tooth


def test_the_notation_has_32_permanent_and_20_primary_teeth():
    assert len(fdi.ALL_TEETH) == 52
    assert [t for t in fdi.ALL_TEETH if t < 50] == [*range(11, 19), *range(21, 29), *range(31, 39), *range(41, 49)]
    assert [t for t in fdi.ALL_TEETH if t > 50] == [*range(51, 56), *range(61, 66), *range(71, 76), *range(81, 86)]


@pytest.mark.parametrize(("code", "name", "surfaces", "sites"), [
    (11, "upper right central incisor", ("M", "I", "D", "F", "P"), ("MF", "F", "DF", "MP", "P", "DP")),
    (23, "upper left canine", ("M", "I", "D", "F", "P"), ("MF", "F", "DF", "MP", "P", "DP")),
    (36, "lower left first molar", ("M", "O", "D", "B", "L"), ("MB", "B", "DB", "ML", "L", "DL")),
    (48, "lower right third molar", ("M", "O", "D", "B", "L"), ("MB", "B", "DB", "ML", "L", "DL")),
    (14, "upper right first premolar", ("M", "O", "D", "B", "P"), ("MB", "B", "DB", "MP", "P", "DP")),
    (51, "upper right primary central incisor", ("M", "I", "D", "F", "P"), ("MF", "F", "DF", "MP", "P", "DP")),
    (75, "lower left primary second molar", ("M", "O", "D", "B", "L"), ("MB", "B", "DB", "ML", "L", "DL")),
    ("85", "lower right primary second molar", ("M", "O", "D", "B", "L"), ("MB", "B", "DB", "ML", "L", "DL")),
])
def test_each_tooth_has_its_name_surfaces_and_sites(code, name, surfaces, sites):
    t = tooth(code)
    assert (t.name, t.surfaces, t.sites) == (name, surfaces, sites)


@pytest.mark.parametrize(("code", "says"), [
    (10, "position"), (19, "11–18"), (56, "51–55"), (86, "81–85"), (90, "quadrant"), (9, "two digits"),
    (100, "two digits"), ("3 6", "two digits"), ("ab", "two digits"), (None, "two digits"), (True, "two digits"),
    (36.0, "two digits"), (0, "two digits"),
])
def test_what_is_not_a_tooth_is_refused_saying_why(code, says):
    with pytest.raises(MarkError) as refused:
        tooth(code)
    assert refused.value.field == "tooth"
    assert says in refused.value.message or (says == "position" and "quadrant 1" in refused.value.message)


@pytest.mark.parametrize(("code", "letters", "expected"), [
    (36, ["o", "M"], ["M", "O"]), (36, "DOM", ["M", "O", "D"]), (11, ["I", "F", "P"], ["I", "F", "P"]),
    (46, ["L", "B", "L"], ["B", "L"]), (21, [], []),
])
def test_surfaces_are_read_in_any_case_and_order(code, letters, expected):
    assert fdi.surfaces(tooth(code), letters) == expected


@pytest.mark.parametrize(("code", "letter", "says"), [
    (11, "O", "I (incisal)"), (36, "I", "O (occlusal)"), (11, "B", "F (facial)"), (36, "F", "B (buccal)"),
    (16, "L", "P (palatal)"), (36, "P", "L (lingual)"), (36, "X", "not a tooth surface"),
    (55, "L", "P (palatal)"), (83, "O", "I (incisal)"),
])
def test_a_surface_the_tooth_does_not_have_is_refused_with_the_right_letter(code, letter, says):
    with pytest.raises(MarkError) as refused:
        fdi.surfaces(tooth(code), [letter])
    assert refused.value.field == "surfaces" and says in refused.value.message
    assert ", ".join(tooth(code).surfaces) in refused.value.message


def chart_after(*marks, chart=None):
    return apply_marks(chart or {}, list(marks))


def test_caries_and_fillings_accumulate_by_surface_and_clear():
    chart, changes = chart_after({"tooth": 36, "finding": "caries", "surfaces": ["O"]},
                                 {"tooth": 36, "finding": "caries", "surfaces": ["M", "O"]},
                                 {"tooth": 36, "finding": "filled", "surfaces": ["D"]})
    assert chart["36"]["caries"] == ["M", "O"] and chart["36"]["filled"] == ["D"]
    assert changes == [{"tooth": 36, "finding": "caries", "before": [], "after": ["O"]},
                       {"tooth": 36, "finding": "caries", "before": ["O"], "after": ["M", "O"]},
                       {"tooth": 36, "finding": "filled", "before": [], "after": ["D"]}]
    chart, changes = chart_after({"tooth": 36, "finding": "caries", "action": "clear", "surfaces": ["O"]}, chart=chart)
    assert chart["36"]["caries"] == ["M"]
    chart, _ = chart_after({"tooth": 36, "finding": "caries", "action": "clear"},
                           {"tooth": 36, "finding": "filled", "action": "clear"}, chart=chart)
    assert chart == {}  # a tooth with nothing recorded leaves the chart


def test_missing_clears_the_tooth_and_refuses_findings_until_cleared():
    chart, changes = chart_after({"tooth": 46, "finding": "caries", "surfaces": ["O"]},
                                 {"tooth": 46, "finding": "missing"})
    assert chart["46"]["state"] == "missing" and chart["46"]["caries"] == []
    assert {c["finding"] for c in changes} == {"caries", "state"}
    for mark in ({"tooth": 46, "finding": "caries", "surfaces": ["O"]}, {"tooth": 46, "finding": "crown"},
                 {"tooth": 46, "finding": "mobility", "grade": 1},
                 {"tooth": 46, "finding": "pocket_depth", "depths": {"MB": 3}}):
        with pytest.raises(Invalid) as refused:
            chart_after(mark, chart=chart)
        assert "recorded as missing" in refused.value.fields["marks"]["0"]["tooth"][0]
    chart, _ = chart_after({"tooth": 46, "finding": "missing", "action": "clear"}, chart=chart)
    assert chart == {}


def test_an_implant_replaces_the_natural_tooth_and_can_carry_a_crown():
    chart, _ = chart_after({"tooth": 36, "finding": "root_canal"}, {"tooth": 36, "finding": "implant"},
                           {"tooth": 36, "finding": "crown"}, {"tooth": 36, "finding": "pocket_depth",
                                                               "depths": {"MB": 4, "dl": 3}})
    assert chart["36"] == {**fdi.EMPTY, "state": "implant", "crown": True, "pockets": {"MB": 4, "DL": 3}}
    for mark, says in (({"tooth": 36, "finding": "caries", "surfaces": ["O"]}, "implant"),
                       ({"tooth": 36, "finding": "root_canal"}, "no root canal")):
        with pytest.raises(Invalid) as refused:
            chart_after(mark, chart=chart)
        assert says in str(refused.value.fields)
    chart, _ = chart_after({"tooth": 36, "finding": "implant", "action": "clear"}, chart=chart)
    assert chart["36"]["state"] == "missing" and chart["36"]["crown"] is False


@pytest.mark.parametrize(("mark", "field", "says"), [
    ({"tooth": 36, "finding": "mobility", "grade": 4}, "grade", "0, 1, 2, 3"),
    ({"tooth": 36, "finding": "mobility"}, "grade", "0, 1, 2, 3"),
    ({"tooth": 36, "finding": "mobility", "grade": True}, "grade", "0, 1, 2, 3"),
    ({"tooth": 36, "finding": "pocket_depth", "depths": {"MP": 3}}, "depths", "MB, B, DB, ML, L, DL"),
    ({"tooth": 36, "finding": "pocket_depth", "depths": {"MB": 16}}, "depths", "0 to 15"),
    ({"tooth": 36, "finding": "pocket_depth", "depths": {"MB": 2.5}}, "depths", "whole millimetres"),
    ({"tooth": 36, "finding": "pocket_depth", "depths": {}}, "depths", "Give the depths"),
    ({"tooth": 36, "finding": "caries"}, "surfaces", "Name the surfaces"),
    ({"tooth": 36, "finding": "crown", "surfaces": ["O"]}, "surfaces", "does not apply"),
    ({"tooth": 36, "finding": "caries", "surfaces": ["O"], "grade": 1}, "grade", "does not apply"),
    ({"tooth": 36, "finding": "plaque"}, "finding", "not a finding"),
    ({"tooth": 19, "finding": "crown"}, "tooth", "11–18"),
])
def test_bad_marks_are_refused_naming_the_field(mark, field, says):
    with pytest.raises(Invalid) as refused:
        chart_after(mark)
    message = refused.value.fields["marks"]["0"][field][0]
    assert says in message


def test_all_or_nothing_and_every_bad_mark_is_named():
    with pytest.raises(Invalid) as refused:
        apply_marks({}, [{"tooth": 11, "finding": "crown"}, {"tooth": 11, "finding": "caries", "surfaces": ["O"]},
                         {"tooth": 99, "finding": "crown"}])
    assert set(refused.value.fields["marks"]) == {"1", "2"}
    assert "The chart was not changed" in refused.value.message and "(and 1 more marks)" in refused.value.message


def test_repeating_a_mark_changes_nothing():
    chart, _ = chart_after({"tooth": 16, "finding": "mobility", "grade": 2})
    again, changes = chart_after({"tooth": 16, "finding": "mobility", "grade": 2}, chart=chart)
    assert again == chart and changes == []


def test_recorded_lists_teeth_in_fdi_order_with_names():
    chart, _ = chart_after({"tooth": 48, "finding": "missing"}, {"tooth": 11, "finding": "crown"},
                           {"tooth": 55, "finding": "caries", "surfaces": ["D"]})
    teeth = fdi.recorded(chart)
    assert [t["tooth"] for t in teeth] == [11, 48, 55]
    assert teeth[0]["name"] == "upper right central incisor" and teeth[0]["crown"] is True
    assert teeth[1]["state"] == "missing" and teeth[2]["caries"] == ["D"]
