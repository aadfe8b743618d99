"""Stored value through the points service's RPC: top-ups with bonus kept apart, payments, refunds;
idempotent, never negative, safe under concurrent payments, reconcilable."""

from __future__ import annotations

import pytest
from nameko.exceptions import RemoteError

from services.kit.caller import Identity
from services.kit.errors import Conflict, Forbidden, Invalid, NotFound
from services.points import wallet
from tests.integration.points_world import World

OFFERS = {"top_up_offers": [{"min_minor": 1000_00, "bonus_minor": 50_00}, {"min_minor": 3000_00,
                                                                           "bonus_minor": 300_00}]}
FRONT_DESK = Identity(kind="staff", subject="u7", role="front_desk", branches=("SH01",))


def cny(amount: int) -> dict:
    return {"amount": amount, "currency": "CNY"}


@pytest.fixture
def world(start_service, rpc, backend, amqp_uri):
    return World.start(start_service, rpc, backend, amqp_uri, POINTS_PROGRAMME=OFFERS)


def test_a_top_up_reaching_an_offer_gets_its_bonus_kept_apart_and_is_announced_once(world):
    member = world.member()
    top_up = {"amount": cny(3000_00), "branch": "SH01"}
    first = world.proxy.points.top_up(member, top_up, idempotency_key="till-1-0001")
    again = world.proxy.points.top_up(member, top_up, idempotency_key="till-1-0001")
    assert again == first
    assert (first["principal"], first["bonus"]) == (cny(3000_00), cny(300_00))
    held = world.proxy.points.wallet(member)
    assert (held["balance"], held["principal"], held["bonus"]) == (cny(3300_00), cny(3000_00), cny(300_00))
    assert held["largest_top_up"] == cny(3000_00)
    events = world.events("topped_up")
    assert [(e["member_id"], e["amount_minor"], e["bonus_minor"], e["currency"], e["branch"]) for e in events] == [
        (member, 3000_00, 300_00, "CNY", "SH01")]


def test_payments_draw_principal_and_bonus_in_proportion_and_refunds_put_them_back(world):
    member = world.member()
    world.proxy.points.top_up(member, {"amount": cny(1000_00), "branch": "SH01"}, idempotency_key="t1")
    payment = world.proxy.points.pay(member, {"bill_id": "B-1", "amount": cny(420_00), "branch": "SH01"},
                                     idempotency_key="p1")
    assert (payment["principal"], payment["bonus"]) == (cny(-400_00), cny(-20_00))
    refund = world.proxy.points.refund_payment(payment["id"], {"amount": cny(210_00), "reason": "one tooth less"},
                                               idempotency_key="rf1")
    assert (refund["principal"], refund["bonus"]) == (cny(200_00), cny(10_00))
    with pytest.raises(Conflict):
        world.proxy.points.refund_payment(payment["id"], {"amount": cny(210_01), "reason": "too much"},
                                          idempotency_key="rf2")
    held = world.proxy.points.wallet(member)
    assert (held["principal"], held["bonus"]) == (cny(800_00), cny(40_00))
    kinds = [p["kind"] for p in world.proxy.points.wallet_history(member)["items"]]
    assert kinds == ["refund", "payment", "top_up"]
    assert world.reconciled(member)["ok"]


def test_a_payment_over_the_balance_is_refused_and_the_card_never_goes_negative(world):
    member = world.member()
    world.proxy.points.top_up(member, {"amount": cny(100_00), "branch": "SH01"}, idempotency_key="t1")
    with pytest.raises(Conflict):
        world.proxy.points.pay(member, {"bill_id": "B-2", "amount": cny(100_01), "branch": "SH01"},
                               idempotency_key="p2")
    assert world.proxy.points.wallet(member)["balance"] == cny(100_00)
    assert world.scalar("SELECT count(*) FROM wallet_postings") == 1


def test_concurrent_payments_never_spend_the_same_money_twice(world):
    member = world.member()
    world.proxy.points.top_up(member, {"amount": cny(500_00), "branch": "SH01"}, idempotency_key="t1")
    replies = [world.proxy.points.pay.call_async(member, {"bill_id": f"B-{n}", "amount": cny(100_00),
                                                          "branch": "SH01"}, idempotency_key=f"pay-{n}")
               for n in range(12)]
    paid = 0
    for reply in replies:
        try:
            reply.result()
            paid += 1
        except Conflict:
            pass
    assert paid == 5
    assert world.proxy.points.wallet(member)["balance"] == cny(0)
    assert world.reconciled(member)["ok"]


@pytest.mark.parametrize(("body", "field"), [
    ({"amount": cny(-1), "branch": "SH01"}, "amount"),
    ({"amount": cny(0), "branch": "SH01"}, "amount"),
    ({"amount": {"amount": 10.5, "currency": "CNY"}, "branch": "SH01"}, "amount"),
    ({"amount": {"amount": "1000", "currency": "CNY"}, "branch": "SH01"}, "amount"),
    ({"amount": cny(1000), "branch": "SH01", "tip": 1}, "tip"),
    ({"amount": {"amount": 1000, "currency": "USD"}, "branch": "SH01"}, "amount"),
])
def test_bad_top_ups_are_refused_and_nothing_is_written(world, body, field):
    member = world.member()
    with pytest.raises(Invalid) as raised:
        world.proxy.points.top_up(member, body, idempotency_key="bad")
    assert field in raised.value.fields
    assert world.scalar("SELECT count(*) FROM wallet_postings") == 0
    assert world.scalar("SELECT count(*) FROM kit_outbox WHERE event_type = 'topped_up'") == 0


def test_a_top_up_whose_event_breaks_its_contract_fails_in_points_and_writes_nothing(world, monkeypatch):
    member = world.member()
    right = wallet.topped_up_event  # the emitter made wrong: the amount as a string, as it once was elsewhere
    monkeypatch.setattr(wallet, "topped_up_event", lambda posting: {**right(posting), "amount_minor": "100000"})
    top_up = {"amount": cny(1000_00), "branch": "SH01"}
    with pytest.raises(RemoteError) as raised:
        world.proxy.points.top_up(member, top_up, idempotency_key="till-9-0001")
    assert raised.value.exc_type == "ContractBroken"
    assert "points.topped_up does not match its contract: amount_minor: str" in raised.value.value
    for table in ("wallet_postings", "wallet_accounts", "kit_outbox", "kit_idempotency"):
        assert world.scalar(f"SELECT count(*) FROM {table}") == 0, table
    monkeypatch.undo()
    done = world.proxy.points.top_up(member, top_up, idempotency_key="till-9-0001")  # the key was not spent
    assert done["principal"] == cny(1000_00)
    assert [(e["amount_minor"], e["topup_id"]) for e in world.events("topped_up")] == [(1000_00, done["id"])]


def test_the_desk_tops_up_only_at_its_branches_and_cannot_set_a_bonus_by_hand(world, rpc):
    member = world.member()
    desk = rpc(caller=FRONT_DESK)
    with pytest.raises(Forbidden):
        desk.points.top_up(member, {"amount": cny(100_00), "branch": "SH02"}, idempotency_key="d1")
    with pytest.raises(Invalid):
        desk.points.top_up(member, {"amount": cny(100_00), "bonus": cny(5_00), "branch": "SH01"},
                           idempotency_key="d2")
    with pytest.raises(Forbidden):
        desk.points.refund_payment("1", {"amount": cny(1), "reason": "x"}, idempotency_key="d3")
    assert desk.points.top_up(member, {"amount": cny(100_00), "branch": "SH01"}, idempotency_key="d4")["bonus"] == cny(0)
    with pytest.raises(NotFound):
        world.proxy.points.refund_payment("999999", {"amount": cny(1), "reason": "x"}, idempotency_key="d5")
