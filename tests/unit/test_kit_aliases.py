"""kit.aliases: one way to follow a merged member's id, with one limit."""

import pytest

from services.kit.aliases import MERGE_CHAIN_LIMIT, follow
from services.kit.errors import Invalid


def test_an_id_never_merged_stands_for_itself():
    assert follow({}.get, "a") == ["a"]


def test_a_chain_of_merges_is_followed_to_its_end():
    merged_into = {"a": "b", "b": "c"}
    assert follow(merged_into.get, "a") == ["a", "b", "c"]
    assert follow(merged_into.get, "b") == ["b", "c"]


def test_the_longest_chain_allowed_is_followed_and_one_more_is_refused():
    longest = {i: i + 1 for i in range(MERGE_CHAIN_LIMIT)}
    assert follow(longest.get, 0)[-1] == MERGE_CHAIN_LIMIT
    too_long = {i: i + 1 for i in range(MERGE_CHAIN_LIMIT + 1)}
    with pytest.raises(Invalid, match="merged too many times"):
        follow(too_long.get, 0)


def test_a_loop_is_refused_not_followed_for_ever():
    with pytest.raises(Invalid):
        follow({"a": "b", "b": "a"}.get, "a")
