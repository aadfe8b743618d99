"""The programme as configuration: the group's file by default, versions stored by group admins on top."""

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


def cheaper_silver(threshold: int = 100_000) -> dict:
    document = copy.deepcopy(programme_document(DEFAULT_PROGRAMME))
    document["tiers"][1]["thresholds"]["spend_minor"] = threshold
    document["tiers"][1]["names"]["en"] = "Silver Smile"
    return document


def test_the_file_is_in_force_until_an_admin_stores_a_version(world, rpc):
    admin = rpc(caller=ADMIN).members
    shipped = admin.get_programme()
    assert (shipped["version"], shipped["source"]) == (0, "file")
    assert shipped["programme"] == programme_document(DEFAULT_PROGRAMME)

    stored = admin.set_programme({"programme": cheaper_silver(), "note": "spring campaign", "expected_version": 0},
                                 idempotency_key="prog-1")
    assert (stored["version"], stored["source"]) == (1, "database")
    again = admin.set_programme({"programme": cheaper_silver(), "note": "spring campaign", "expected_version": 0},
                                idempotency_key="prog-1")
    assert again == stored  # a retry stores nothing new
    current = admin.get_programme()
    assert current["version"] == 1 and current["history"][0]["created_by"] == "staff:u0 (group_admin)"

    member = world.enrol()
    world.visit(member, 100_000)  # the new threshold applies from the next event
    tier = world.proxy.members.tier(member)
    assert tier["tier"] == "silver" and tier["tier_names"]["en"] == "Silver Smile"


def test_only_a_group_admin_changes_the_programme_and_bad_ones_store_nothing(world, rpc):
    with pytest.raises(Forbidden):
        rpc(caller=DESK).members.set_programme({"programme": cheaper_silver()})
    admin = rpc(caller=ADMIN).members
    with pytest.raises(Invalid) as raised:
        admin.set_programme({"programme": cheaper_silver(threshold=3_000_000)})  # above gold's
    assert "tiers.2.thresholds" in raised.value.fields  # gold would no longer be above silver
    with pytest.raises(Invalid):
        admin.set_programme({"programme": {"tiers": []}})
    with pytest.raises(Conflict):
        admin.set_programme({"programme": cheaper_silver(), "expected_version": 7})
    assert world.rows("SELECT count(*) FROM programme_versions")[0][0] == 0


def test_a_tier_members_hold_cannot_be_dropped(world, rpc):
    admin = rpc(caller=ADMIN).members
    member = world.enrol()
    world.top_up(member, 3_000_000)  # diamond
    shorter = copy.deepcopy(programme_document(DEFAULT_PROGRAMME))
    shorter["tiers"] = shorter["tiers"][:3]
    with pytest.raises(Conflict) as raised:
        admin.set_programme({"programme": shorter})
    assert "diamond" in raised.value.message


def test_lower_thresholds_reach_members_at_their_next_review(world, rpc):
    from services.members.rules.tiers import next_anniversary
    from tests.integration.members_world import today

    member = world.enrol()
    world.visit(member, 100_000)
    rpc(caller=ADMIN).members.set_programme({"programme": cheaper_silver()})
    assert world.proxy.members.tier(member)["tier"] == "standard"  # no event since: nothing moved yet
    world.night(next_anniversary(today(), today()))
    assert world.proxy.members.tier(member)["tier"] == "silver"
    (raised,) = world.events("tier_changed", member_id=member)
    assert (raised["direction"], raised["reason"]) == ("up", "spend")
