"""Member merges in points: a duplicate's points (lot by lot, dates kept), debt, stored value and coupons
move to the survivor and back; the duplicate's id names the survivor meanwhile; each merge applies once."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from services.kit.caller import Identity
from services.members.events import MemberMerged, MemberUnmerged
from tests.harness import wait_for
from tests.integration.points_world import World, member_key

ADMIN = Identity(kind="staff", subject="u0", role="group_admin", branches=("*",))
OFFERS = {"top_up_offers": [{"min_minor": 1000_00, "bonus_minor": 50_00}]}
MANUAL = {"source": "manual", "title": "10 off", "value": {"amount": 10_00, "currency": "CNY"}}


def cny(amount: int) -> dict:
    return {"amount": amount, "currency": "CNY"}


@pytest.fixture
def world(start_service, rpc, backend, amqp_uri):
    return World.start(start_service, rpc, backend, amqp_uri, POINTS_PROGRAMME=OFFERS)


@pytest.fixture
def admin(world, rpc):
    return rpc(caller=ADMIN).members


def merge_state(world: World, merge_id: str) -> str | None:
    rows = world.rows("SELECT state FROM points_merges WHERE merge_id = :m", m=member_key(world.url, merge_id))
    return rows[0][0] if rows else None


def merge(world: World, admin: Any, survivor: str, duplicate: str) -> str:
    """Merge through the members service, and wait until points has applied its member_merged."""
    merge_id = admin.merge_members(survivor, {"merged_id": duplicate, "reason": "same person, two cards"},
                                   idempotency_key=f"merge-{duplicate}")["merge_id"]
    wait_for(lambda: merge_state(world, merge_id) == "merged", timeout=15, message="points to apply the merge")
    return merge_id


def unmerge(world: World, admin: Any, merge_id: str) -> None:
    admin.reverse_merge(merge_id, {"reason": "not the same person after all"}, idempotency_key=f"un-{merge_id}")
    wait_for(lambda: merge_state(world, merge_id) == "unmerged", timeout=15, message="points to apply the reversal")


def account(world: World, member_id: str) -> int:
    """The member's own account, read from storage (through RPC a merged id answers the survivor's)."""
    rows = world.rows("SELECT balance FROM points_accounts WHERE member_id = :m", m=member_key(world.url, member_id))
    return rows[0][0] if rows else 0


def lots(world: World, member_id: str) -> list[tuple[int, str]]:
    return sorted((lot["remaining"], lot["expires_on"]) for lot in world.proxy.points.lots(member_id)["items"])


def reconciled(world: World, *members: str) -> bool:
    return all(world.reconciled(member)["ok"] for member in members)


def test_merge_moves_each_lot_with_its_date_stored_value_and_issued_coupons_and_both_ledgers_reconcile(world, admin):
    survivor, duplicate = world.member(), world.member()
    world.give(survivor, 300)
    early = world.give(duplicate, 200)
    world.give(duplicate, 100)
    world.execute("UPDATE points_lots SET expires_on = '2027-06-30' WHERE posting_id = :p", p=int(early["id"]))
    world.proxy.points.top_up(duplicate, {"amount": cny(1000_00), "branch": "SH01"}, idempotency_key="t-dup")
    kept = world.proxy.points.issue_coupon(duplicate, MANUAL, idempotency_key="c-kept")
    voided = world.proxy.points.issue_coupon(duplicate, MANUAL, idempotency_key="c-void")
    world.proxy.points.void_coupon(voided["code"], {"reason": "issued by mistake"}, idempotency_key="v1")
    earned_events = len(world.earned())

    merge(world, admin, survivor, duplicate)

    assert account(world, duplicate) == 0 and account(world, survivor) == 600
    assert lots(world, survivor) == [(100, "2027-12-31"), (200, "2027-06-30"), (300, "2027-12-31")]
    assert world.postings(survivor)[-1]["kind"] == "transfer_in" and world.postings(survivor)[-1]["points"] == 300
    assert world.balance(duplicate) == 600  # the duplicate's id now names the survivor
    held = world.proxy.points.wallet(survivor)
    assert (held["principal"], held["bonus"]) == (cny(1000_00), cny(50_00))
    assert world.scalar("SELECT principal_minor + bonus_minor FROM wallet_accounts WHERE member_id = :m",
                        m=member_key(world.url, duplicate)) == 0
    assert [(p["kind"], p["principal"]) for p in world.proxy.points.wallet_history(survivor)["items"]] == [
        ("transfer_in", cny(1000_00))]
    assert world.proxy.points.get_coupon(kept["code"])["member_id"] == survivor
    assert world.proxy.points.get_coupon(voided["code"])["member_id"] == duplicate
    assert reconciled(world, survivor, duplicate)
    assert len(world.earned()) == earned_events  # members counts merged activity itself


def test_a_redelivered_merge_or_the_same_merge_under_another_event_id_moves_nothing_more(world):
    survivor, duplicate = world.member(), world.member()
    world.give(duplicate, 250)
    event = {"survivor_id": uuid.UUID(survivor), "merged_id": uuid.UUID(duplicate), "merge_id": uuid.uuid4()}
    world.deliver(MemberMerged, **event)
    world.deliver(MemberMerged, **event)  # another event id, the same merge
    assert account(world, survivor) == 250 and account(world, duplicate) == 0
    assert [p["kind"] for p in world.postings(survivor)] == ["transfer_in"]
    assert world.scalar("SELECT count(*) FROM kit_inbox WHERE consumer = 'points.on_member_merged'") == 2
    assert reconciled(world, survivor, duplicate)


def test_a_late_visit_and_an_earn_for_the_merged_id_land_on_the_survivor(world, admin):
    survivor, duplicate = world.member(), world.member()
    world.give(duplicate, 50)
    merge(world, admin, survivor, duplicate)
    world.visit(duplicate, 100_00)  # a visit completed before the merge, announced after it
    world.give(duplicate, 40)
    assert account(world, survivor) == 50 + 110 + 40 and account(world, duplicate) == 0
    assert {p["member_id"] for p in world.postings(survivor)} == {survivor}
    assert reconciled(world, survivor, duplicate)


def test_refunds_after_the_merge_of_the_duplicate_s_visit_and_card_payment_apply_to_the_survivor(world, admin):
    survivor, duplicate = world.member(), world.member()
    world.give(survivor, 100)
    visit = world.visit(duplicate, 100_00)  # 110 points
    world.proxy.points.top_up(duplicate, {"amount": cny(100_00), "branch": "SH01"}, idempotency_key="t1")
    payment = world.proxy.points.pay(duplicate, {"bill_id": "B-1", "amount": cny(60_00), "branch": "SH01"},
                                     idempotency_key="p1")
    merge(world, admin, survivor, duplicate)
    world.refund(duplicate, visit, 100_00, full=True)
    world.proxy.points.refund_payment(payment["id"], {"amount": cny(60_00), "reason": "treatment not given"},
                                      idempotency_key="rf1")
    assert account(world, survivor) == 100 and account(world, duplicate) == 0
    assert lots(world, survivor) == [(100, "2027-12-31")]  # taken back from the lot the visit opened
    assert world.proxy.points.wallet(survivor)["balance"] == cny(100_00)
    assert reconciled(world, survivor, duplicate)


def test_a_reversal_that_overtakes_its_merge_leaves_the_late_merge_without_effect(world):
    survivor, duplicate = world.member(), world.member()
    world.give(duplicate, 80)
    event = {"survivor_id": uuid.UUID(survivor), "merged_id": uuid.UUID(duplicate), "merge_id": uuid.uuid4()}
    world.deliver(MemberUnmerged, **event)
    world.deliver(MemberMerged, **event)
    assert account(world, duplicate) == 80 and account(world, survivor) == 0
    assert world.balance(duplicate) == 80


def test_a_merged_debt_moves_to_the_survivor_and_back(world, admin):
    survivor, duplicate = world.member(), world.member()
    world.give(survivor, 300)
    visit = world.visit(duplicate, 100_00)  # 110 points
    reward = world.reward(price=100)
    world.proxy.points.redeem(duplicate, {"reward_id": reward["id"], "branch": "SH01"}, idempotency_key="r1")
    world.refund(duplicate, visit, 100_00, full=True)
    assert account(world, duplicate) == -100

    merge_id = merge(world, admin, survivor, duplicate)
    assert account(world, survivor) == 200 and account(world, duplicate) == 0
    assert reconciled(world, survivor, duplicate)

    unmerge(world, admin, merge_id)
    assert account(world, survivor) == 300 and account(world, duplicate) == -100
    assert world.balance(duplicate) == -100  # the alias is gone
    assert reconciled(world, survivor, duplicate)


def test_unmerge_moves_back_what_the_merge_moved(world, admin):
    survivor, duplicate = world.member(), world.member()
    world.give(survivor, 300)
    early = world.give(duplicate, 200)
    world.execute("UPDATE points_lots SET expires_on = '2027-06-30' WHERE posting_id = :p", p=int(early["id"]))
    world.proxy.points.top_up(duplicate, {"amount": cny(1000_00), "branch": "SH01"}, idempotency_key="t-dup")
    coupon = world.proxy.points.issue_coupon(duplicate, MANUAL, idempotency_key="c1")
    merge_id = merge(world, admin, survivor, duplicate)

    unmerge(world, admin, merge_id)

    assert account(world, survivor) == 300 and account(world, duplicate) == 200
    assert lots(world, duplicate) == [(200, "2027-06-30")] and lots(world, survivor) == [(300, "2027-12-31")]
    assert world.balance(duplicate) == 200  # the alias is gone
    held = world.proxy.points.wallet(duplicate)
    assert (held["principal"], held["bonus"]) == (cny(1000_00), cny(50_00))
    assert world.proxy.points.wallet(survivor)["balance"] == cny(0)
    assert world.proxy.points.get_coupon(coupon["code"])["member_id"] == duplicate
    assert reconciled(world, survivor, duplicate)


def test_unmerge_after_the_survivor_spent_the_moved_points_gives_them_back_and_leaves_the_survivor_in_debt(
        world, admin):
    survivor, duplicate = world.member(), world.member()
    world.give(survivor, 100)
    world.give(duplicate, 500)
    world.proxy.points.top_up(duplicate, {"amount": cny(1000_00), "branch": "SH01"}, idempotency_key="t-dup")
    merge_id = merge(world, admin, survivor, duplicate)
    reward = world.reward(price=550)
    world.proxy.points.redeem(survivor, {"reward_id": reward["id"], "branch": "SH01"}, idempotency_key="r1")
    world.proxy.points.pay(survivor, {"bill_id": "B-1", "amount": cny(210_00), "branch": "SH01"},
                           idempotency_key="p1")  # 200 of principal, 10 of bonus
    assert account(world, survivor) == 50

    unmerge(world, admin, merge_id)

    # the restored member is made whole; the survivor owes what it spent of them, as after a refund
    assert account(world, duplicate) == 500 and account(world, survivor) == -450
    assert world.proxy.points.balance(survivor)["debt"] == 450
    held = world.proxy.points.wallet(duplicate)
    assert (held["principal"], held["bonus"]) == (cny(800_00), cny(40_00))  # money cannot go negative
    shortfall = world.scalar("SELECT wallet_shortfall_minor FROM points_merges WHERE merge_id = :m",
                             m=member_key(world.url, merge_id))
    assert shortfall == 210_00
    assert reconciled(world, survivor, duplicate)
    world.give(survivor, 100)  # the survivor's next points pay the debt first
    assert account(world, survivor) == -350 and reconciled(world, survivor)
