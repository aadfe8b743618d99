"""Coupons through the points service's RPC: issued once per key, checked and used once against a bill,
voided or expired, never back; and coupons bought with points."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from services.kit.errors import Conflict, Invalid, NotFound
from tests.integration.points_world import World

BIRTHDAY = {"source": "birthday", "title": "Happy birthday: 50 off", "value": {"amount": 50_00, "currency": "CNY"},
            "min_spend": {"amount": 100_00, "currency": "CNY"}, "valid_days": 30}


def cny(amount: int) -> dict:
    return {"amount": amount, "currency": "CNY"}


@pytest.fixture
def world(start_service, rpc, backend, amqp_uri):
    return World.start(start_service, rpc, backend, amqp_uri)


def use(member: str, bill_id: str, amount: int, **extra: object) -> dict:
    return {"member_id": member, "bill_id": bill_id, "bill": cny(amount), "branch": "SH01", **extra}


def test_a_birthday_coupon_is_issued_once_per_key_announced_used_once_and_never_again(world):
    member = world.member()
    coupon = world.proxy.points.issue_coupon(member, BIRTHDAY, idempotency_key=f"birthday:2026:{member}")
    again = world.proxy.points.issue_coupon(member, BIRTHDAY, idempotency_key=f"birthday:2026:{member}")
    assert again == coupon and coupon["state"] == "issued"
    assert coupon["valid_until"] == (date.fromisoformat(coupon["valid_from"]) + timedelta(days=29)).isoformat()
    assert [e["coupon_id"] for e in world.events("coupon_issued")] == [coupon["id"]]
    assert world.events("coupon_issued")[0]["value_minor"] == 50_00

    with pytest.raises(Conflict):  # under the minimum spend
        world.proxy.points.check_coupon(coupon["code"], use(member, "B-1", 99_99))
    checked = world.proxy.points.check_coupon(coupon["code"].lower(), use(member, "B-1", 300_00))
    assert checked["discount"] == cny(50_00)
    used = world.proxy.points.redeem_coupon(coupon["code"], use(member, "B-1", 300_00))
    assert used["state"] == "redeemed" and used["discount"] == cny(50_00) and used["redeemed_bill_id"] == "B-1"
    assert world.proxy.points.redeem_coupon(coupon["code"], use(member, "B-1", 300_00)) == used  # same bill: same
    with pytest.raises(Conflict):
        world.proxy.points.redeem_coupon(coupon["code"], use(member, "B-2", 300_00))
    with pytest.raises(Conflict):
        world.proxy.points.void_coupon(coupon["code"], {"reason": "too late"}, idempotency_key="v1")


def test_only_the_owner_s_bill_can_use_a_coupon_and_a_category_coupon_needs_its_category(world):
    owner, other = world.member(), world.member()
    coupon = world.proxy.points.issue_coupon(owner, {"source": "campaign", "title": "20% off cleaning",
                                                     "category": "cleaning", "rate_bp": 2000,
                                                     "max_discount": cny(30_00)}, idempotency_key="c1")
    with pytest.raises(Conflict):
        world.proxy.points.redeem_coupon(coupon["code"], use(other, "B-3", 200_00))
    with pytest.raises(Invalid):
        world.proxy.points.redeem_coupon(coupon["code"], use(owner, "B-3", 200_00))
    items = [{"category": "cleaning", "amount": cny(100_00)}, {"category": "exam", "amount": cny(100_00)}]
    assert world.proxy.points.redeem_coupon(coupon["code"], use(owner, "B-3", 200_00, items=items))["discount"] == \
        cny(20_00)


def test_a_voided_coupon_and_an_expired_coupon_cannot_be_used(world):
    member = world.member()
    voided = world.proxy.points.issue_coupon(member, {**BIRTHDAY, "source": "manual"}, idempotency_key="c2")
    assert world.proxy.points.void_coupon(voided["code"], {"reason": "issued by mistake"},
                                          idempotency_key="v2")["state"] == "void"
    with pytest.raises(Conflict):
        world.proxy.points.redeem_coupon(voided["code"], use(member, "B-4", 300_00))

    today = date.fromisoformat(voided["valid_from"])
    short = world.proxy.points.issue_coupon(member, {**BIRTHDAY, "valid_days": 1}, idempotency_key="c3")
    outcome = world.proxy.points.run_daily_jobs({"day": (today + timedelta(days=1)).isoformat()})
    assert outcome["expire_coupons"]["processed"] == 1
    assert world.proxy.points.get_coupon(short["code"])["state"] == "expired"
    states = sorted(c["state"] for c in world.proxy.points.coupons(member)["items"])
    assert states == ["expired", "void"]
    assert [c["code"] for c in world.proxy.points.coupons(member, state="void")["items"]] == [voided["code"]]


@pytest.mark.parametrize(("coupon", "field"), [
    ({"source": "birthday", "title": "x"}, "value"),
    ({"source": "birthday", "title": "x", "value": cny(10), "rate_bp": 100}, "value"),
    ({"source": "birthday", "title": "x", "value": {"amount": 9.99, "currency": "CNY"}}, "value"),
    ({"source": "birthday", "title": "x", "value": cny(-5)}, "value"),
    ({"source": "birthday", "title": "x", "rate_bp": 10_001}, "rate_bp"),
    ({"source": "redemption", "title": "x", "value": cny(10)}, "source"),
    ({"source": "birthday", "title": "x", "value": cny(10), "valid_until": "2020-01-01"}, "valid_until"),
])
def test_a_coupon_that_cannot_be_honoured_is_refused(world, coupon, field):
    member = world.member()
    with pytest.raises(Invalid) as raised:
        world.proxy.points.issue_coupon(member, coupon, idempotency_key="bad")
    assert field in raised.value.fields
    assert world.scalar("SELECT count(*) FROM coupons") == 0


def test_a_coupon_reward_bought_with_points_is_issued_at_once_and_cancelling_voids_it(world):
    member = world.member()
    world.give(member, 1000)
    reward = world.proxy.points.create_reward({"code": "CLEAN50", "name": "50 off a cleaning", "kind": "coupon",
                                               "points_price": 400, "coupon": {"category": "cleaning",
                                                                               "value": cny(50_00), "valid_days": 60}})
    redemption = world.proxy.points.redeem(member, {"reward_id": reward["id"], "branch": "SH01"}, idempotency_key="cr1")
    assert redemption["state"] == "fulfilled" and redemption["coupon"]["source"] == "redemption"
    assert redemption["coupon"]["value"] == cny(50_00)
    world.proxy.points.cancel_redemption(redemption["id"], {"reason": "wrong coupon"}, idempotency_key="cc1")
    assert world.proxy.points.get_coupon(redemption["coupon"]["code"])["state"] == "void"
    assert world.balance(member) == 1000


def test_unknown_coupons_and_members_are_not_found(world):
    with pytest.raises(NotFound):
        world.proxy.points.get_coupon("NOSUCHCODE")
    with pytest.raises(NotFound):
        world.proxy.points.issue_coupon("00000000-0000-0000-0000-000000000000", BIRTHDAY, idempotency_key="nf")
