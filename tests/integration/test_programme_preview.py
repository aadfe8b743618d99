"""The preview of a programme change: how many members it moves up and down, counted by the database
against the members' last 12 months, without writing anything."""

from __future__ import annotations

import copy

import pytest

from services.kit.caller import Identity
from services.kit.errors import Conflict, Forbidden, Invalid
from services.members.rules.programme import DEFAULT_PROGRAMME, programme_document
from tests.integration.members_world import start_world

ADMIN = Identity(kind="staff", subject="u0", role="group_admin", branches=("*",))
DESK = Identity(kind="staff", subject="u1", role="front_desk", branches=("SH01",))


@pytest.fixture
def world(start_service, rpc, backend, amqp_uri):
    return start_world(start_service, rpc, backend, amqp_uri)


def proposal(**silver: int | None) -> dict:
    document = copy.deepcopy(programme_document(DEFAULT_PROGRAMME))
    document["tiers"][1]["thresholds"].update(silver)
    return {"programme": document}


def counts(preview: dict) -> tuple[int, int, int, int, int]:
    return preview["members"], preview["up"], preview["down"], preview["unchanged"], preview["already_short"]


def test_cheaper_silver_moves_up_who_now_qualifies_and_writes_nothing(world, rpc):
    low, high, points, idle = world.enrol(), world.enrol(), world.enrol(), world.enrol()
    world.visit(low, 100_000)  # 1,000 CNY: standard today
    world.visit(high, 600_000)  # 6,000 CNY: silver today (5,000 CNY)
    world.earn(points, 4_000)  # below silver's 5,000 points
    admin = rpc(caller=ADMIN).members
    assert [world.proxy.members.tier(m)["tier"] for m in (low, high, points, idle)] == [
        "standard", "silver", "standard", "standard"]

    preview = admin.preview_programme(proposal(spend_minor=100_000, points_12m=4_000))
    assert counts(preview) == (4, 2, 0, 2, 0)
    assert preview["moves"] == [{"from_tier": "standard", "to_tier": "silver", "direction": "up", "members": 2}]
    assert preview["version"] == 0
    assert world.rows("SELECT count(*) FROM programme_versions")[0][0] == 0
    assert [world.proxy.members.tier(m)["tier"] for m in (low, high, points, idle)] == [
        "standard", "silver", "standard", "standard"]
    assert world.events("tier_changed", member_id=low) == []


def test_dearer_silver_counts_who_would_drop_at_review_and_no_change_moves_nobody(world, rpc):
    high, higher = world.enrol(), world.enrol()
    world.visit(high, 600_000)
    world.visit(higher, 900_000)
    admin = rpc(caller=ADMIN).members

    same = admin.preview_programme(proposal())
    assert counts(same) == (2, 0, 0, 2, 0) and same["moves"] == []

    dearer = admin.preview_programme(proposal(spend_minor=800_000))
    assert counts(dearer) == (2, 0, 1, 1, 0)
    assert dearer["moves"] == [{"from_tier": "silver", "to_tier": "standard", "direction": "down", "members": 1}]


def test_a_gold_member_short_of_a_dearer_gold_drops_one_step_as_the_review_would(world, rpc):
    gold = world.enrol()
    world.top_up(gold, 1_000_000)  # gold by a single top-up of 10,000 CNY
    assert world.proxy.members.tier(gold)["tier"] == "gold"
    document = proposal()
    document["programme"]["tiers"][2]["thresholds"]["single_top_up_minor"] = 1_500_000
    document["programme"]["tiers"][1]["thresholds"]["single_top_up_minor"] = 1_200_000
    preview = rpc(caller=ADMIN).members.preview_programme(document)
    assert counts(preview) == (1, 0, 1, 0, 0)
    # the 12 months earn standard now, but a review lowers a tier by at most one step
    assert preview["moves"] == [{"from_tier": "gold", "to_tier": "silver", "direction": "down", "members": 1}]


def test_bad_proposals_are_refused_by_field_and_only_group_admins_preview(world, rpc):
    diamond = world.enrol()
    world.top_up(diamond, 3_000_000)
    admin = rpc(caller=ADMIN).members
    with pytest.raises(Forbidden):
        rpc(caller=DESK).members.preview_programme(proposal(spend_minor=100_000))
    with pytest.raises(Invalid) as raised:
        admin.preview_programme(proposal(spend_minor=3_000_000))  # above gold's
    assert "tiers.2.thresholds" in raised.value.fields
    with pytest.raises(Invalid) as raised:
        admin.preview_programme(proposal(spend_minor="lots"))
    assert raised.value.fields
    shorter = proposal()
    shorter["programme"]["tiers"] = shorter["programme"]["tiers"][:3]
    with pytest.raises(Conflict) as conflict:
        admin.preview_programme(shorter)
    assert "diamond" in conflict.value.message


def test_member_summary_is_member_tier_and_benefits_in_one_call(world, rpc):
    member = world.enrol()
    world.visit(member, 600_000)
    members = world.proxy.members
    summary = members.member_summary(member)
    assert summary == {"member": members.get_member(member), "tier": members.tier(member),
                       "benefits": members.benefits(member)}
    assert summary["tier"]["tier"] == "silver" and summary["benefits"]["tier"] == "silver"


def test_the_database_s_counts_agree_with_the_tier_rule_member_by_member(world, rpc):
    """The SQL twin of ``tiers.evaluate``: for mixed activity (spend, refunds' absence, points, top-ups, visits of
    kinds that do and do not count) and several proposals, the preview's counts are what the Python rule says
    of each member's 12 months as the tier page reports them."""
    from services.members.programme_versions import parse
    from services.members.rules import tiers
    from services.members.rules.tiers import Activity

    members = [world.enrol() for _ in range(6)]
    world.visit(members[0], 450_000)
    world.visit(members[1], 90_000, kind="free_clinic")
    for _ in range(5):
        world.visit(members[1], 1_000)
    world.earn(members[2], 6_000)
    world.top_up(members[3], 1_200_000)
    world.earn(members[4], 19_000)
    world.visit(members[4], 1_900_000)
    admin = rpc(caller=ADMIN).members
    pages = [world.proxy.members.tier(member) for member in members]

    for change in (proposal(spend_minor=400_000), proposal(visits_12m=5), proposal(points_12m=7_000),
                   proposal(single_top_up_minor=200_000, spend_minor=100_000)):
        proposed = parse(change["programme"], "CNY")
        expected = {"up": 0, "down": 0}
        for page in pages:
            earned = proposed.rank(tiers.evaluate(proposed, Activity(**page["activity"])).tier)
            held = proposed.rank(page["tier"])
            expected["up"] += earned > held
            expected["down"] += earned < held
        preview = admin.preview_programme(change)
        assert (preview["up"], preview["down"] + preview["already_short"]) == (expected["up"], expected["down"]), \
            (change, preview, pages)
