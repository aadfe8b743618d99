"""Merging duplicates (and reversing it), freezing, reactivating and closing members."""

from __future__ import annotations

import pytest

from services.kit.caller import Identity
from services.kit.errors import Conflict, Forbidden, Invalid, NotFound
from tests.integration.members_world import start_world

ADMIN = Identity(kind="staff", subject="u0", role="group_admin", branches=("*",))
MANAGER_HZ = Identity(kind="staff", subject="m2", role="branch_manager", branches=("HZ01",))


@pytest.fixture
def world(start_service, rpc, backend, amqp_uri):
    return start_world(start_service, rpc, backend, amqp_uri)


def test_merge_moves_activity_raises_the_survivor_and_can_be_reversed(world, rpc):
    admin = rpc(caller=ADMIN).members
    survivor = world.enrol()
    duplicate = world.enrol()
    duplicate_phone = admin.get_member(duplicate)["phone"]
    referred = world.enrol(referral_code=admin.get_member(duplicate)["referral_code"])
    world.visit(survivor, 300_000)
    world.visit(duplicate, 300_000)  # together: 600,000 of spend, silver
    world.top_up(duplicate, 100)
    admin.change_tier(duplicate, {"tier": "gold", "note": "moved from the old card"})
    world.proxy.members.use_quota(duplicate, "free_cleaning", {"visit_id": "v-dup"})

    merge = admin.merge_members(survivor, {"merged_id": duplicate, "reason": "same person, two cards"},
                                idempotency_key="merge-1")
    assert merge["survivor_tier"] == "gold"  # never lower than either member's tier
    assert merge["moved"] == {"visits": 1, "refunds": 0, "points": 0, "top_ups": 1, "quota_uses": 1, "referrals": 1}
    assert admin.merge_members(survivor, {"merged_id": duplicate, "reason": "same person, two cards"},
                               idempotency_key="merge-2")["merge_id"] == merge["merge_id"]  # done already
    (event,) = world.events("member_merged")
    assert event == {**event, "survivor_id": survivor, "merged_id": duplicate, "merge_id": merge["merge_id"]}
    (raised,) = world.events("tier_changed", member_id=survivor)
    assert (raised["to_tier"], raised["reason"]) == ("gold", "merge")
    gone = admin.get_member(duplicate)
    assert (gone["status"], gone["merged_into"]) == ("merged", survivor)
    assert admin.get_member(referred)["referred_by"] == survivor
    tier = world.proxy.members.tier(survivor)
    assert tier["activity"]["spend_minor"] == 600_000 and tier["lifetime"]["visits"] == 2
    assert world.proxy.members.benefits(survivor)["quotas"][0]["used"] == 1  # the use moved along
    world.visit(duplicate, 1_000)  # a late event about the duplicate lands on the survivor
    assert world.proxy.members.tier(survivor)["activity"]["spend_minor"] == 601_000
    with pytest.raises(Conflict):
        admin.update_member(duplicate, {"preferred_language": "en"})
    assert admin.find_members({"phone": duplicate_phone})["items"] == []  # it matches no one any more

    reversed_ = admin.reverse_merge(merge["merge_id"], {"reason": "not the same person after all"},
                                    idempotency_key="unmerge-1")
    assert reversed_["reversed_by"] == "staff:u0 (group_admin)"
    back = admin.get_member(duplicate)
    assert (back["status"], back["merged_into"], back["tier"]) == ("active", None, "gold")
    assert admin.get_member(referred)["referred_by"] == duplicate
    assert world.proxy.members.tier(survivor)["tier"] == "standard"  # its own 301,000 earn nothing
    assert world.proxy.members.tier(duplicate)["activity"]["spend_minor"] == 300_000
    (unmerged,) = world.events("member_unmerged")
    assert unmerged["merge_id"] == merge["merge_id"]
    assert [(e["to_tier"], e["direction"], e["reason"]) for e in world.events("tier_changed", member_id=survivor)] \
        == [("gold", "up", "merge"), ("standard", "down", "merge")]
    assert admin.find_members({"phone": duplicate_phone})["items"][0]["id"] == duplicate
    assert [m["merge_id"] for m in admin.member_merges(survivor)["items"]] == [merge["merge_id"]]


def test_merge_refuses_itself_unknown_members_and_other_branches(world, rpc):
    admin = rpc(caller=ADMIN).members
    one, other = world.enrol(), world.enrol()
    with pytest.raises(Invalid):
        admin.merge_members(one, {"merged_id": one, "reason": "oops"})
    with pytest.raises(NotFound):
        admin.merge_members(one, {"merged_id": "00000000-0000-0000-0000-000000000000", "reason": "x"})
    with pytest.raises(Forbidden):
        rpc(caller=MANAGER_HZ).members.merge_members(one, {"merged_id": other, "reason": "x"})
    assert world.events("member_merged") == []


def test_frozen_members_keep_activity_but_change_tier_only_when_reactivated(world):
    member = world.enrol()
    frozen = world.proxy.members.freeze_member(member, {"reason": "dispute", "note": "bill 77 contested"})
    assert frozen["status"] == "frozen"
    assert world.proxy.members.freeze_member(member, {"reason": "dispute"})["status"] == "frozen"  # once
    world.visit(member, 600_000)
    assert world.proxy.members.tier(member)["tier"] == "standard"
    active = world.proxy.members.unfreeze_member(member, {"reason": "resolved"})
    assert active["status"] == "active" and world.proxy.members.tier(member)["tier"] == "silver"
    assert [(e["from_status"], e["to_status"], e["reason"]) for e in world.events("member_status_changed")] == \
        [("active", "frozen", "dispute"), ("frozen", "active", "resolved")]
    audit = world.proxy.members.status_history(member)["items"]
    assert [a["reason"] for a in audit] == ["resolved", "dispute: bill 77 contested"]
    with pytest.raises(Invalid):
        world.proxy.members.freeze_member(member, {"reason": "because"})


def test_closing_erases_personal_data_and_keeps_the_anonymised_record(world):
    member = world.enrol()
    world.visit(member, 600_000)
    card = world.proxy.members.get_member(member)["card_number"]
    closed = world.proxy.members.close_member(member, {"reason": "erasure_request"})
    assert closed["status"] == "closed" and closed["card_number"] == card
    assert (closed["full_name"], closed["phone"], closed["email"], closed["birth_date"], closed["id_document"]) == \
        (None, None, None, None, None)
    (row,) = world.rows("SELECT full_name, phone, phone_index, name_index, name_birth_index, document_index, "
                        "birth_mmdd FROM members")
    assert tuple(row) == (None,) * 7
    assert world.rows("SELECT count(*) FROM member_name_tokens")[0][0] == 0
    assert world.rows("SELECT count(*) FROM member_visits")[0][0] == 1  # the anonymised ledger stays
    assert world.proxy.members.find_members({"q": "Test"})["items"] == []
    assert world.proxy.members.close_member(member, {"reason": "erasure_request"})["status"] == "closed"
    assert len(world.events("member_status_changed", member_id=member)) == 1
    with pytest.raises(Conflict):
        world.proxy.members.unfreeze_member(member, {"reason": "resolved"})
    with pytest.raises(Conflict):
        world.proxy.members.update_member(member, {"preferred_language": "en"})
