"""A paid visit's facts judged from the sums read with the member's lock plus the fact itself (``arrivals``: the
fact's row goes with the commit, the sums are not read again): the tier moves exactly when the sums read afterwards
say it should — a fact outside the 12 months, a visit of a kind that does not count and a manager's adjustment add
nothing; the programme in force is the newest version stored, met by its stamp."""

from __future__ import annotations

import copy
import uuid
from datetime import timedelta

import pytest

from services.kit.caller import Identity
from services.kit.clock import utcnow
from services.members.rules.programme import DEFAULT_PROGRAMME, programme_document
from tests.integration.members_world import start_world

ADMIN = Identity(kind="staff", subject="u0", role="group_admin", branches=("*",))
SILVER_SPEND, SILVER_VISITS, SILVER_POINTS = 500_000, 6, 5_000


@pytest.fixture
def world(start_service, rpc, backend, amqp_uri):
    return start_world(start_service, rpc, backend, amqp_uri)


def test_facts_outside_the_window_or_not_counted_add_nothing_and_the_threshold_is_exact(world):
    members = world.proxy.members
    by_spend, by_visits, by_points = world.enrol(), world.enrol(), world.enrol()
    long_ago = utcnow() - timedelta(days=400)

    world.visit(by_spend, SILVER_SPEND - 1)
    world.visit(by_spend, 1, completed_at=long_ago)  # before the 12 months
    assert members.tier(by_spend)["tier"] == "standard"
    assert members.tier(by_spend)["activity"]["spend_minor"] == SILVER_SPEND - 1
    world.visit(by_spend, 1)
    assert members.tier(by_spend)["tier"] == "silver"

    for _ in range(SILVER_VISITS - 1):
        world.visit(by_visits, 0, kind="first")
    world.visit(by_visits, 0, kind="event")  # events do not count for tiers
    world.visit(by_visits, 0, completed_at=long_ago)
    assert members.tier(by_visits)["tier"] == "standard"
    world.visit(by_visits, 0, kind="emergency")
    tier = members.tier(by_visits)
    assert (tier["tier"], tier["qualifies_for"]["paths"]) == ("silver", ["visits"])

    world.earn(by_points, SILVER_POINTS - 1)
    world.earn(by_points, 1, rule="adjust")  # an adjustment qualifies nobody
    world.earn(by_points, 1, earned_at=long_ago)
    assert members.tier(by_points)["tier"] == "standard"
    world.earn(by_points, 1)
    tier = members.tier(by_points)
    assert (tier["tier"], tier["qualifies_for"]["paths"]) == ("silver", ["points"])

    for member, reason in ((by_spend, "spend"), (by_visits, "visits"), (by_points, "points")):
        (changed,) = world.events("tier_changed", member_id=member)
        assert (changed["to_tier"], changed["reason"]) == ("silver", reason)


def test_a_visits_postings_in_one_event_count_together_once(world):
    """Points announce a visit's earn postings in one ``visit_points_earned`` (issue 17): kept together, judged once
    with all of them, kept once whatever comes again (the event re-announced, a posting that came alone before)."""
    members = world.proxy.members
    member, other = world.enrol(), world.enrol()
    world.earn(member, SILVER_POINTS - 100)
    world.earn_visit(member, [(60, "spend"), (30, "visit"), (500, "adjust")])  # an adjustment qualifies nobody
    tier = members.tier(member)
    assert (tier["tier"], tier["activity"]["points"]) == ("standard", SILVER_POINTS - 10)

    crossing = world.earn_visit(member, [(5, "spend"), (5, "visit")])
    tier = members.tier(member)
    assert (tier["tier"], tier["qualifies_for"]["paths"]) == ("silver", ["points"])
    (changed,) = world.events("tier_changed", member_id=member)
    assert (changed["to_tier"], changed["reason"]) == ("silver", "points")

    world.send("points", "visit_points_earned", {**crossing, "event_id": str(uuid.uuid4())}, "on_visit_points_earned")
    assert members.tier(member)["activity"]["points"] == SILVER_POINTS  # counted once
    assert len(world.events("tier_changed", member_id=member)) == 1

    alone = world.earn(other, 40, rule="spend")  # one of a visit's postings kept before (a points_earned)
    world.earn_visit(other, [(40, "spend"), (10, "visit")], posting_ids=[alone["posting_id"], "990001"])
    assert members.tier(other)["activity"]["points"] == 50


def silver_at(threshold: int) -> dict:
    document = copy.deepcopy(programme_document(DEFAULT_PROGRAMME))
    document["tiers"][1]["thresholds"]["spend_minor"] = threshold
    return document


def test_each_new_version_of_the_programme_applies_from_the_next_visit(world, rpc):
    admin, members = rpc(caller=ADMIN).members, world.proxy.members
    first, second = world.enrol(), world.enrol()
    world.visit(first, 200_000)  # the file's programme: standard
    admin.set_programme({"programme": silver_at(300_000)})
    world.visit(first, 100_000)
    assert members.tier(first)["tier"] == "silver"
    world.visit(second, 200_000)
    assert members.tier(second)["tier"] == "standard"
    admin.set_programme({"programme": silver_at(250_000)})  # version 2: met by its stamp, not a stale copy
    world.visit(second, 50_000)
    assert members.tier(second)["tier"] == "silver"
