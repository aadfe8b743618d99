"""The identity rule (``services.members.rules.identity.judge``): sure, probable or nobody."""

from __future__ import annotations

import pytest

from services.kit.errors import Invalid
from services.members.rules.identity import NONE, PROBABLE, SURE, Match, judge, normalise_identifier


def m(member: str, *reasons: str, same_name: bool = False) -> Match:
    return Match(member, f"88{member}", reasons, same_name)


@pytest.mark.parametrize(("matches", "outcome", "member"), [
    ([], NONE, None),
    ([m("a", "identifier")], SURE, "a"),
    ([m("a", "identifier", same_name=False)], SURE, "a"),  # an MRN is sure even if the name was misspelt
    ([m("a", "id_document")], SURE, "a"),
    ([m("a", "phone", same_name=True)], SURE, "a"),
    ([m("a", "phone", "name_and_birth_date", same_name=True)], SURE, "a"),
    ([m("a", "phone")], PROBABLE, None),  # same phone, another name: a parent's phone on a child's record
    ([m("a", "name_and_birth_date", same_name=True)], PROBABLE, None),  # same name and birth, another phone
    ([m("a", "identifier"), m("b", "name_and_birth_date", same_name=True)], SURE, "a"),  # the sure one wins
    ([m("a", "identifier"), m("b", "phone", same_name=True)], PROBABLE, None),  # two members surely: a person says
    ([m("a", "phone"), m("b", "name_and_birth_date", same_name=True)], PROBABLE, None),
])
def test_judge(matches, outcome, member):
    verdict = judge(matches)
    assert (verdict.outcome, verdict.member_id) == (outcome, member)
    if outcome == PROBABLE:
        assert {c.member_id for c in verdict.candidates} == {x.member_id for x in matches}
    else:
        assert verdict.candidates == ()


def test_a_sure_match_says_why():
    assert judge([m("a", "phone", "name_and_birth_date", same_name=True)]).matched_on == ("phone",
                                                                                         "name_and_birth_date")


def test_probable_candidates_put_the_surer_first():
    verdict = judge([m("b", "name_and_birth_date", same_name=True), m("a", "identifier"), m("c", "id_document")])
    assert [c.member_id for c in verdict.candidates] == ["a", "c", "b"]


def test_identifiers_are_compared_exactly_but_without_surrounding_or_wide_spaces():
    assert normalise_identifier(" https://his.example/mrn ", "  MRN-００１ ") == ("https://his.example/mrn", "MRN-001")
    assert normalise_identifier("urn:x", "abc") != normalise_identifier("urn:x", "ABC")
    with pytest.raises(Invalid):
        normalise_identifier("urn:x", "   ")
