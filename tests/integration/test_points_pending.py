"""Pending points (issue 20, item 4): a visit's points locked for the refund window are shown apart, count
for nothing until the daily job releases them, and a refund inside the window cancels them without debt;
after the release they are spendable and a refund reverses them as any earn. Reconciliation proves
balance = postings = lots and pending = pending postings = holds throughout."""

from __future__ import annotations

import uuid

import pytest

from services.kit.errors import Conflict
from tests.integration.points_world import World

PENDING = {"pending_days": 14, "pending_rules": ["spend"]}
VISIT_AT = "2027-03-01T02:00:00Z"  # released on 2027-03-15: a day the nightly timer (run for today) never reaches


@pytest.fixture
def world(start_service, rpc, backend, amqp_uri):
    return World.start(start_service, rpc, backend, amqp_uri, POINTS_PROGRAMME=PENDING)


def _redeem(world: World, member: str, price: int) -> dict:
    reward = world.reward(price)
    return world.proxy.points.redeem(member, {"reward_id": reward["id"], "branch": "SH01"},
                                     idempotency_key=uuid.uuid4().hex)


def test_a_refund_inside_the_pending_window_leaves_the_balance_as_before_the_bill_and_no_debt(world):
    member = world.member()
    world.give(member, 5)
    visit_id = world.visit(member, 100_00, completed_at=VISIT_AT)  # spend 100 (locked), visit 10 (not a pending rule: at once)
    balance = world.proxy.points.balance(member)
    assert (balance["balance"], balance["spendable"], balance["pending"]) == (15, 15, 100)
    assert balance["pending_schedule"] == [{"release_on": "2027-03-15", "points": 100}]
    with pytest.raises(Conflict):
        _redeem(world, member, 100)  # locked points cannot be spent
    assert [e["points"] for e in world.earned() if e["member_id"] == member] == [5, 10]

    world.refund(member, visit_id, 100_00, full=True)
    balance = world.proxy.points.balance(member)
    assert (balance["balance"], balance["debt"], balance["pending"]) == (5, 0, 0)  # as before the bill
    assert [(p["kind"], p["points"]) for p in world.postings(member)] == [("earn", 5), ("earn", 10), ("reverse", -10)]
    outcome = world.proxy.points.run_daily_jobs({"day": "2027-03-15"})
    assert outcome["release_pending"]["finished"] and outcome["release_pending"]["processed"] == 0
    assert world.balance(member) == 5 and world.reconciled(member)["ok"]
    effects = world.proxy.points.visit_effects([{"visit_id": visit_id, "refunded_minor": 100_00, "full": True}])
    effect = effects["items"][0]
    assert (effect["earned_points"], effect["reversed_points"], effect["reversal_due"]) == (110, 110, 110)


def test_after_release_the_points_are_spendable_and_a_later_refund_reverses_them(world):
    member = world.member()
    visit_id = world.visit(member, 200_00, completed_at=VISIT_AT)
    world.refund(member, visit_id, 50_00)  # a quarter inside the window: 50 of the 200 locked are cancelled
    assert world.proxy.points.balance(member)["pending"] == 150

    assert world.proxy.points.run_daily_jobs({"day": "2027-03-14"})["release_pending"]["processed"] == 0
    assert world.proxy.points.balance(member)["pending"] == 150  # the window is not over yet
    outcome = world.proxy.points.run_daily_jobs({"day": "2027-03-15"})
    assert outcome["release_pending"]["processed"] == 1
    balance = world.proxy.points.balance(member)
    assert (balance["balance"], balance["pending"], balance["earned_total"]) == (160, 0, 160)
    released = [e for e in world.earned() if e["member_id"] == member and e["rule"] == "spend"]
    assert [e["points"] for e in released] == [150]  # announced (and counted for tiers) only when released
    again = world.proxy.points.run_daily_jobs({"day": "2027-03-15"})
    assert again["release_pending"]["skipped"] == "done" and world.balance(member) == 160

    _redeem(world, member, 150)  # spendable now
    world.refund(member, visit_id, 200_00, full=True)  # the rest of the spend and the visit points come back
    balance = world.proxy.points.balance(member)
    assert (balance["balance"], balance["debt"], balance["pending"]) == (-150, 150, 0)
    assert world.reconciled(member)["ok"]
    effect = world.proxy.points.visit_effects([{"visit_id": visit_id, "refunded_minor": 200_00,
                                                "full": True}])["items"][0]
    assert (effect["earned_points"], effect["reversed_points"], effect["reversal_due"]) == (210, 210, 210)


def test_without_a_pending_rule_points_are_spendable_at_once(start_service, rpc, backend, amqp_uri):
    world = World.start(start_service, rpc, backend, amqp_uri)
    member = world.member()
    world.visit(member, 100_00)
    balance = world.proxy.points.balance(member)
    assert (balance["balance"], balance["pending"], balance["pending_schedule"]) == (110, 0, [])
