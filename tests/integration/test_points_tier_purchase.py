"""A tier upgrade bought with points (issue 20, item 5): points spends the programme's price and members places
the tier (``tier_changed`` with reason ``points_purchase``), once per idempotency key; refused with a clear
error — and nothing spent — when the tier is not offered, not affordable or not above the member's."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import text

from services.kit.errors import Conflict, Invalid
from tests.harness import store_for
from tests.integration.points_world import World

PRICES = {"tier_upgrade_prices": {"silver": 300, "gold": 500}}


@pytest.fixture
def world(start_service, rpc, backend, amqp_uri):
    return World.start(start_service, rpc, backend, amqp_uri, POINTS_PROGRAMME=PRICES)


def _tier_changes(world: World, member_id: str) -> list[dict]:
    store = store_for(world.members.database_url)
    try:
        with store.transaction() as session:
            rows = session.execute(text("SELECT payload FROM kit_outbox WHERE event_type = 'tier_changed' "
                                        "ORDER BY id")).all()
    finally:
        store.dispose()
    return [event for event in (json.loads(payload) for (payload,) in rows) if event["member_id"] == member_id]


def _buy(world: World, member_id: str, tier: str, key: str | None = None) -> dict:
    return world.proxy.points.buy_tier(member_id, {"tier": tier, "branch": "SH01"},
                                       idempotency_key=key or uuid.uuid4().hex)


def test_a_tier_bought_with_points_is_placed_once_per_key_and_announced_as_a_points_purchase(world):
    member = world.member()
    world.give(member, 650)
    key = uuid.uuid4().hex
    bought = _buy(world, member, "gold", key)
    again = _buy(world, member, "gold", key)  # a retry under the same key: the same answer, spent once
    assert (bought["kind"], bought["points"], bought["state"], bought["tier"]["tier"]) == (
        "tier_upgrade", 500, "fulfilled", "gold")
    assert again["id"] == bought["id"]
    assert world.balance(member) == 150 and world.reconciled(member)["ok"]
    assert world.proxy.members.tier(member)["tier"] == "gold"
    changes = _tier_changes(world, member)
    assert [(c["from_tier"], c["to_tier"], c["reason"]) for c in changes] == [("standard", "gold", "points_purchase")]
    redeemed = [e for e in world.events("points_redeemed") if e["member_id"] == member]
    assert [(e["kind"], e["points"]) for e in redeemed] == [("tier_upgrade", 500)]


def test_a_tier_not_offered_unaffordable_or_not_above_the_member_s_is_refused_and_spends_nothing(world):
    member = world.member()
    world.give(member, 400)
    with pytest.raises(Invalid) as not_offered:
        _buy(world, member, "diamond")
    assert "tier" in not_offered.value.fields
    with pytest.raises(Conflict):
        _buy(world, member, "gold")  # 500 > 400
    _buy(world, member, "silver")
    with pytest.raises(Conflict):  # members refuses (not above silver): points' spend is rolled back
        _buy(world, member, "silver")
    assert world.balance(member) == 100 and world.reconciled(member)["ok"]
    assert world.proxy.members.tier(member)["tier"] == "silver"
    assert len(_tier_changes(world, member)) == 1
    with pytest.raises(Invalid):
        world.proxy.points.buy_tier(member, {"tier": "gold", "branch": "SH01"})  # no idempotency key


def test_without_prices_no_tier_can_be_bought(start_service, rpc, backend, amqp_uri):
    world = World.start(start_service, rpc, backend, amqp_uri)
    member = world.member()
    world.give(member, 10_000)
    with pytest.raises(Invalid):
        _buy(world, member, "silver")
    assert world.balance(member) == 10_000
