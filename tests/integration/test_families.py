"""Family accounts (issue 20, item 3): a contact person and linked members with an audit (members), a family
view of balances and transfers of points and stored value within the family where the programme allows it
(points): each side a posting, once per idempotency key, reconciled; 20 concurrent transfers never make a
balance negative (PostgreSQL, the overlap proven)."""

from __future__ import annotations

import uuid

import pytest
from nameko.exceptions import RemoteError

from services.kit.errors import Conflict, Invalid, NotFound
from tests.integration.overlap import LockWaits
from tests.integration.points_world import World

TRANSFERS = {"family_points_transfer": True, "family_wallet_transfer": True, "wallet_spend_order": "principal_first"}


def cny(minor: int) -> dict:
    return {"amount": minor, "currency": "CNY"}


@pytest.fixture
def world(start_service, rpc, backend, amqp_uri):
    return World.start(start_service, rpc, backend, amqp_uri, POINTS_PROGRAMME=TRANSFERS)


def _family(world: World, contact: str, *others: tuple[str, str]) -> dict:
    family = world.proxy.members.create_family({"contact_member_id": contact, "branch": "SH01"},
                                               idempotency_key=uuid.uuid4().hex)
    for member_id, relation in others:
        family = world.proxy.members.link_family_member(family["id"], {"member_id": member_id, "relation": relation},
                                                        idempotency_key=uuid.uuid4().hex)
    return family


def _points(world: World, family_id: str, giver: str, receiver: str, points: int, key: str | None = None) -> dict:
    return world.proxy.points.transfer_points(family_id, {"from_member_id": giver, "to_member_id": receiver,
                                                          "points": points, "branch": "SH01"},
                                              idempotency_key=key or uuid.uuid4().hex)


def test_a_family_links_and_unlinks_members_with_an_audit_and_one_family_per_member(world):
    parent, child, other = world.member(), world.member(), world.member()
    family = _family(world, parent, (child, "minor"))
    assert family["contact_member_id"] == parent
    assert [(m["member_id"], m["relation"]) for m in family["members"]] == [(parent, "contact"), (child, "minor")]
    assert world.proxy.members.member_family(child)["id"] == family["id"]
    with pytest.raises(Conflict):  # one family per member
        _family(world, other, (child, "minor"))
    with pytest.raises(Conflict):  # the contact person stays while others remain
        world.proxy.members.unlink_family_member(family["id"], parent, {"reason": "moved"}, idempotency_key="u1")
    with pytest.raises(Invalid):
        world.proxy.members.link_family_member(family["id"], {"member_id": other, "relation": "cousin"},
                                               idempotency_key="l-bad")
    after = world.proxy.members.unlink_family_member(family["id"], child, {"reason": "turned 18, own account"},
                                                     idempotency_key="u2")
    assert [m["member_id"] for m in after["members"]] == [parent]
    with pytest.raises(NotFound):
        world.proxy.members.member_family(child)
    history = world.proxy.members.family_history(family["id"])["items"]
    assert [(h["action"], h["member_id"], h["relation"]) for h in history] == [
        ("created", parent, "contact"), ("linked", parent, "contact"), ("linked", child, "minor"),
        ("unlinked", child, "minor")]
    assert history[-1]["reason"] == "turned 18, own account" and history[-1]["actor"]


def test_a_minor_s_messages_go_to_the_family_s_contact_person(world):
    parent, child, adult = world.enrol(), world.enrol(), world.enrol()
    _family(world, parent["id"], (child["id"], "minor"), (adult["id"], "adult"))
    reached = world.proxy.members.get_contact(child["id"])  # what notifications asks before each message
    assert (reached["member_id"], reached["phone"]) == (child["id"], parent["phone"])
    assert reached["consents"] == world.proxy.members.get_contact(parent["id"])["consents"]
    assert world.proxy.members.get_contact(adult["id"])["phone"] == adult["phone"]  # an adult: directly


def test_points_and_stored_value_move_within_a_family_once_per_key_and_reconcile(world):
    parent, child, stranger = world.member(), world.member(), world.member()
    family = _family(world, parent, (child, "minor"))
    world.give(parent, 500)
    key = uuid.uuid4().hex
    moved = _points(world, family["id"], parent, child, 200, key)
    again = _points(world, family["id"], parent, child, 200, key)  # the same key twice moves once
    assert again["id"] == moved["id"] and (moved["kind"], moved["points"]) == ("points", 200)
    assert (world.balance(parent), world.balance(child)) == (300, 200)
    assert [(p["kind"], p["points"]) for p in world.postings(child)] == [("transfer_in", 200)]
    lots = world.proxy.points.lots(child)["items"]
    assert [lot["remaining"] for lot in lots] == [200] and lots[0]["expires_on"]  # the giver's expiry date kept
    with pytest.raises(Conflict):  # never more than the giver has
        _points(world, family["id"], parent, child, 301)
    with pytest.raises(Invalid):  # only within the family
        _points(world, family["id"], parent, stranger, 10)

    world.proxy.points.top_up(parent, {"amount": cny(100_00), "bonus": cny(20_00), "branch": "SH01"},
                              idempotency_key="top-1")
    sent = world.proxy.points.transfer_stored_value(family["id"], {
        "from_member_id": parent, "to_member_id": child, "amount": cny(110_00), "branch": "SH01"},
        idempotency_key="sv-1")
    assert (sent["principal"]["amount"], sent["bonus"]["amount"]) == (100_00, 10_00)  # principal first, kept apart
    wallet = world.proxy.points.wallet(child)
    assert (wallet["principal"]["amount"], wallet["bonus"]["amount"]) == (100_00, 10_00)

    view = world.proxy.points.family_balances(family["id"])
    assert view["points"] == 500 and view["principal"]["amount"] == 100_00 and view["bonus"]["amount"] == 20_00
    assert {m["member_id"]: m["points"] for m in view["members"]} == {parent: 300, child: 200}
    for member_id in (parent, child):
        assert world.reconciled(member_id)["ok"]


def test_transfers_are_refused_where_the_programme_does_not_allow_them(start_service, rpc, backend, amqp_uri):
    world = World.start(start_service, rpc, backend, amqp_uri)
    parent, child = world.member(), world.member()
    family = _family(world, parent, (child, "adult"))
    world.give(parent, 100)
    with pytest.raises(Invalid) as refused:
        _points(world, family["id"], parent, child, 10)
    assert "family" in refused.value.fields
    assert (world.balance(parent), world.balance(child)) == (100, 0)


@pytest.mark.backends("postgresql")  # on SQLite one transaction runs at a time: nothing can overlap
def test_twenty_concurrent_transfers_never_make_a_balance_negative_and_reconcile(world):
    first, second = world.member(), world.member()
    family = _family(world, first, (second, "adult"))
    world.give(first, 100)
    world.give(second, 100)
    world.known_to_points(first)
    world.known_to_points(second)
    with LockWaits(world.url) as waits:
        replies = [world.proxy.points.transfer_points.call_async(
            family["id"], {"from_member_id": giver, "to_member_id": receiver, "points": 30, "branch": "SH01"},
            idempotency_key=f"rush-{number}")
            for number, (giver, receiver) in enumerate([(first, second), (second, first)] * 10)]
        outcomes = []
        for reply in replies:
            try:
                outcomes.append(reply.result()["kind"])
            except Conflict:
                outcomes.append("short")
            except RemoteError as failed:  # a deadlock would arrive as an error of its own
                outcomes.append(failed.exc_type)
    waited = waits.count("transactionid", "tuple")
    assert waited >= 3, f"only {waited} transfers waited for another's account lock: they did not overlap"
    assert set(outcomes) <= {"points", "short"} and outcomes.count("points") >= 6
    assert world.balance(first) + world.balance(second) == 200
    assert world.scalar("SELECT min(balance_after) FROM points_postings") >= 0
    assert world.reconciled()["ok"]
