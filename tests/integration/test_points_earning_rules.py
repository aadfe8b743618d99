"""Earning rules changed through points' RPCs: a versioned override of the programme file's, checked by the file's
own parsing, audited, applied to everything earned from the moment the change answered; a stale version is
refused."""

from __future__ import annotations

import uuid

import pytest

from services.kit.caller import Identity
from services.kit.errors import Conflict, Forbidden, Invalid
from services.records.events import FeedbackSubmitted
from tests.integration.overlap import LockWaits
from tests.integration.points_world import World
from tests.integration.test_points_campaigns import key, lines

ADMIN = Identity(kind="staff", subject="u0", role="group_admin", branches=("*",))
MANAGER = Identity(kind="staff", subject="u2", role="branch_manager", branches=("SH01",))
FILE = {"visit_points": 7, "campaigns": [{"code": "member-day", "name": "Member day", "days_of_month": [20],
                                          "bonus_points": 1}]}


@pytest.fixture
def world(start_service, rpc, backend, amqp_uri):
    return World.start(start_service, rpc, backend, amqp_uri, POINTS_PROGRAMME=FILE)


def test_a_changed_spend_rate_earns_from_the_next_bill_and_a_stale_version_is_refused(world, rpc):
    admin = rpc(caller=ADMIN).points
    member = world.member()
    world.visit(member, 100_00)  # the file's rules (and the cache at this stamp): 1 point per yuan, 7 per visit
    assert lines(world, member) == [("spend", 100), ("visit", 7), ("campaign", 1)]
    before = admin.get_earning_rules()
    assert (before["version"], before["source"], before["stored"]) == (0, "file", [])
    assert before["rules"]["spend_points_per_unit"] == 1 and before["rules"]["visit_points"] == 7

    changing = key()
    changed = admin.set_earning_rules({"spend_points_per_unit": 3, "tier_multipliers": {"standard": "1.5"},
                                       "expected_version": 0}, idempotency_key=changing)
    assert (changed["version"], changed["source"], changed["stored"]) == (
        1, "stored", ["spend_points_per_unit", "tier_multipliers"])
    assert changed["rules"]["tier_multipliers"] == {"standard": 15_000}
    assert changed["rules"]["visit_points"] == 7  # not sent: the file's
    assert changed["updated_by"] == "staff:u0 (group_admin)"
    assert admin.set_earning_rules({"spend_points_per_unit": 3, "tier_multipliers": {"standard": "1.5"},
                                    "expected_version": 0}, idempotency_key=changing) == changed  # a retry: the same answer, no version 2

    world.visit(member, 100_00)  # 100 yuan x 3 x 1.5; the campaigns still merge in
    assert lines(world, member)[3:] == [("spend", 450), ("visit", 7), ("campaign", 1)]
    assert world.proxy.points.programme_rules()["spend_points_per_unit"] == 3

    with pytest.raises(Conflict) as stale:  # edited from version 0, but 1 is in force
        admin.set_earning_rules({"spend_points_per_unit": 9, "expected_version": 0}, idempotency_key=key())
    assert stale.value.details == {"version": "1"}  # details travel as text
    back = admin.set_earning_rules({"expected_version": 1}, idempotency_key=key())  # nothing set: the file's again
    assert (back["version"], back["source"], back["rules"]["spend_points_per_unit"]) == (2, "file", 1)
    assert [(v["version"], v["terms"], v["created_by"]) for v in back["versions"]] == [
        (1, {"spend_points_per_unit": 3, "tier_multipliers": {"standard": 15_000}}, "staff:u0 (group_admin)"),
        (2, {}, "staff:u0 (group_admin)")]
    world.visit(member, 100_00)
    assert lines(world, member)[6:] == [("spend", 100), ("visit", 7), ("campaign", 1)]


def test_the_other_earning_rules_apply_to_activities_and_reviews(world, rpc):
    admin = rpc(caller=ADMIN).points
    member = world.member()
    admin.set_earning_rules({"activity_points": 80, "review_points": {"satisfied": 25}, "expected_version": 0},
                            idempotency_key=key())
    rules = admin.get_earning_rules()["rules"]
    assert rules["review_points"]["very_satisfied"] == 30  # satisfactions not sent keep the file's
    world.proxy.points.earn(member, {"rule": "activity", "branch": "SH01", "source_ref": "talk-1"},
                            idempotency_key=key())
    world.deliver(FeedbackSubmitted, member_id=uuid.UUID(member), satisfaction="satisfied")
    assert sorted(lines(world, member)) == [("activity", 80), ("review", 25)]


def test_bad_rules_name_the_field_and_store_nothing(world, rpc):
    admin = rpc(caller=ADMIN).points
    cases = [
        ({"spend_points_per_unit": 1.5}, "spend_points_per_unit"),
        ({"visit_points": -1}, "visit_points"),
        ({"tier_multipliers": {"gold": "0.5"}}, "tier_multipliers.gold"),
        ({"visit_kinds": ["party"]}, "visit_kinds"),
        ({"review_points": {"ecstatic": 5}}, "review_points"),
        ({"interaction_points": {"share": "5"}}, "interaction_points.share"),
        ({"lot_expiry_years_after": 3}, "lot_expiry_years_after"),  # not an earning rule: the file's alone
        ({"colour": "red"}, "colour"),
        ({"spend_points_per_unit": 2}, "expected_version"),  # a blind overwrite
        ({"spend_points_per_unit": 2, "expected_version": "0"}, "expected_version"),
    ]
    for body, field in cases:
        with pytest.raises(Invalid) as raised:
            admin.set_earning_rules({"expected_version": 0, **body} if field != "expected_version" else body,
                                    idempotency_key=key())
        assert field in raised.value.fields, (body, raised.value.fields)
    with pytest.raises(Forbidden):
        rpc(caller=MANAGER).points.set_earning_rules({"visit_points": 1, "expected_version": 0},
                                                     idempotency_key=key())
    with pytest.raises(Invalid):  # a change a retry could repeat needs a key
        admin.set_earning_rules({"visit_points": 1, "expected_version": 0})
    assert world.scalar("SELECT count(*) FROM points_earning_rules") == 0
    assert admin.get_earning_rules()["version"] == 0


@pytest.mark.backends("postgresql")  # on SQLite one transaction runs at a time: nothing can overlap
def test_edits_of_one_version_sent_at_once_one_wins_the_others_are_told_it_changed(world, rpc):
    admin = rpc(caller=ADMIN).points
    with LockWaits(world.url) as waits:  # ten edits of version 0, all sent at once
        replies = [admin.set_earning_rules.call_async({"visit_points": points, "expected_version": 0},
                                                      idempotency_key=key()) for points in range(1, 11)]
        outcomes = []
        for reply in replies:
            try:
                outcomes.append(reply.result()["rules"]["visit_points"])
            except Conflict:
                outcomes.append("conflict")
    assert sorted(outcomes, key=str).count("conflict") == 9, outcomes
    assert waits.count("transactionid", "tuple") >= 1, "no edit waited for another's lock: they did not overlap"
    got = admin.get_earning_rules()
    assert [v["version"] for v in got["versions"]] == [1]
    assert got["rules"]["visit_points"] == next(found for found in outcomes if found != "conflict")
