"""Points driven by other services' events: referrals, reviews, tiers, segments, frozen memberships,
campaigns, cancelled visits; and the quote that says in advance what a bill earns."""

from __future__ import annotations

import uuid

import pytest
from nameko.standalone.events import event_dispatcher

from services.kit.errors import Conflict
from services.members.events import MemberStatusChanged, SegmentChanged, TierChanged
from services.records.events import FeedbackSubmitted, VisitCancelled, VisitCompleted
from tests.harness import service_config, wait_for
from tests.integration.points_world import World, moment, wire

MEMBER_DAY = {"campaigns": [
    {"code": "member-day", "name": "Member day", "days_of_month": [18], "multiplier": 2},
    {"code": "a-bonus", "name": "Core members' treat", "segments": ["A"], "bonus_points": 25},
]}


@pytest.fixture
def world(start_service, rpc, backend, amqp_uri):
    return World.start(start_service, rpc, backend, amqp_uri, POINTS_PROGRAMME=MEMBER_DAY)


def test_enrolment_opens_an_account_and_a_referral_pays_the_referrer_twice(world):
    referrer = world.enrol()
    referred = world.enrol(referral_code=referrer["referral_code"])
    wait_for(lambda: world.balance(referrer["id"]) == 200, message="the enrolment referral bonus")
    assert world.proxy.points.balance(referred["id"])["balance"] == 0

    world.visit(referred["id"], 100_00, first_paid_visit=True, first_visit=True)
    assert world.balance(referrer["id"]) == 500
    bonuses = [(p["rule"], p["points"], p["source"]) for p in world.postings(referrer["id"])]
    assert bonuses == [("referral", 200, "enrolment"), ("referral", 300, "visit")]
    world.visit(referred["id"], 100_00, first_paid_visit=False)
    assert world.balance(referrer["id"]) == 500


def test_a_fully_refunded_first_paid_visit_takes_the_referrer_s_visit_bonus_back(world):
    referrer = world.enrol()
    referred = world.enrol(referral_code=referrer["referral_code"])
    visit_id = world.visit(referred["id"], 100_00, first_paid_visit=True)
    wait_for(lambda: world.balance(referrer["id"]) == 500, message="both referral bonuses")
    world.refund(referred["id"], visit_id, 50_00)
    assert world.balance(referrer["id"]) == 500  # a partial refund leaves it a paid visit
    world.refund(referred["id"], visit_id, 50_00, full=True)
    assert world.balance(referrer["id"]) == 200 and world.balance(referred["id"]) == 0


def test_a_survey_answer_earns_review_points_once_per_visit(world):
    member, visit = world.member(), uuid.uuid4()
    for _answer in range(2):  # a second survey of the same visit earns nothing more
        world.deliver(FeedbackSubmitted, feedback_id=uuid.uuid4(), member_id=uuid.UUID(member), visit_id=visit,
                      kind="survey", satisfaction="very_satisfied", nps=10, urgent=False)
    world.deliver(FeedbackSubmitted, feedback_id=uuid.uuid4(), member_id=uuid.UUID(member), visit_id=uuid.uuid4(),
                  kind="complaint", satisfaction=None, nps=None, urgent=True)
    assert [(p["rule"], p["points"]) for p in world.postings(member)] == [("review", 30)]


def test_the_tier_from_tier_changed_multiplies_spend_and_an_older_change_does_not_undo_a_newer(world):
    member = world.member()
    # these tier changes are made up (members never sent them): if points had to ask members about the member
    # after them, members' answer (standard, and newer) would rightly win
    world.known_to_points(member)
    world.deliver(TierChanged, member_id=uuid.UUID(member), from_tier="standard", to_tier="gold", direction="up",
                  reason="spend", effective_at=moment("2026-11-22T10:00:00Z"))
    world.deliver(TierChanged, member_id=uuid.UUID(member), from_tier="standard", to_tier="silver", direction="up",
                  reason="spend", effective_at=moment("2026-11-21T10:00:00Z"))  # late, and older
    world.visit(member, 100_00)
    assert [(p["rule"], p["points"]) for p in world.postings(member)] == [("spend", 150), ("visit", 10)]


def test_a_frozen_membership_neither_earns_nor_redeems_until_it_is_active_again(world):
    member = world.member()
    world.give(member, 500)
    world.deliver(MemberStatusChanged, member_id=uuid.UUID(member), from_status="active", to_status="frozen",
                  reason="dispute")
    world.visit(member, 100_00)
    reward = world.reward(price=100)
    with pytest.raises(Conflict) as raised:
        world.proxy.points.redeem(member, {"reward_id": reward["id"], "branch": "SH01"}, idempotency_key="f1")
    assert "frozen" in raised.value.message
    with pytest.raises(Conflict):
        world.proxy.points.earn(member, {"rule": "activity", "source_ref": "talk", "branch": "SH01"},
                                idempotency_key="f2")
    assert world.balance(member) == 500
    world.deliver(MemberStatusChanged, member_id=uuid.UUID(member), from_status="frozen", to_status="active",
                  reason="resolved")
    world.proxy.points.redeem(member, {"reward_id": reward["id"], "branch": "SH01"}, idempotency_key="f3")
    assert world.balance(member) == 400


def test_member_day_and_a_segment_campaign_add_their_own_lines(world):
    member = world.member()
    world.deliver(SegmentChanged, member_id=uuid.UUID(member), from_segment="C", to_segment="A",
                  rfm={"r": 5, "f": 5, "m": 5}, churn_risk=False)
    world.visit(member, 100_00, completed_at="2026-11-18T04:00:00Z")  # the 18th in Shanghai
    world.visit(member, 100_00, completed_at="2026-11-18T17:00:00Z")  # already the 19th in Shanghai
    lines = [(p["rule"], p["points"]) for p in world.postings(member)]
    assert lines == [("spend", 100), ("visit", 10), ("campaign", 100), ("campaign", 25),
                     ("spend", 100), ("visit", 10), ("campaign", 25)]


def test_the_quote_says_rule_by_rule_what_the_visit_then_earns(world):
    member = world.member()
    bill = {"branch": "SH01", "kind": "return", "completed_at": "2026-11-18T04:00:00Z",
            "items": [{"category": "implant", "code": "I1", "amount": {"amount": 400_00, "currency": "CNY"}}],
            "payments": [{"method": "card", "amount": {"amount": 300_00, "currency": "CNY"}},
                         {"method": "points", "amount": {"amount": 100_00, "currency": "CNY"}}]}
    quote = world.proxy.points.quote(member, bill)
    assert quote["qualifying"] == {"amount": 300_00, "currency": "CNY"}
    assert [(line["rule"], line["points"]) for line in quote["lines"]] == [("spend", 300), ("visit", 10),
                                                                          ("campaign", 300)]
    assert quote["total_to_member"] == 610
    world.visit(member, 400_00, completed_at="2026-11-18T04:00:00Z",
                items=[{"category": "implant", "code": "I1", "amount_minor": 400_00}],
                payments=[{"method": "card", "amount_minor": 300_00}, {"method": "points", "amount_minor": 100_00}])
    assert world.balance(member) == quote["total_to_member"]


def test_online_interactions_stop_at_the_daily_cap(world):
    member = world.member()
    earned = []
    for number in range(5):
        try:
            posting = world.proxy.points.earn(member, {"rule": "interaction", "interaction": "share",
                                                       "source_ref": f"post-{number}", "branch": "SH01"},
                                              idempotency_key=f"share-{number}")
            earned.append(posting["points"])
        except Conflict:
            earned.append(0)
    assert earned == [5, 5, 5, 5, 0]


def test_a_cancelled_visit_keeps_nothing_it_earned(world):
    member = world.member()
    visit_id = world.visit(member, 80_00)
    world.deliver(VisitCancelled, visit_id=uuid.UUID(visit_id), member_id=uuid.UUID(member))
    assert world.balance(member) == 0
    assert [p["kind"] for p in world.postings(member)] == ["earn", "earn", "reverse", "reverse"]


def test_an_event_that_cannot_be_read_is_parked_not_retried(world):
    body = wire(VisitCompleted, member_id=uuid.UUID(world.member()))  # broken below as no producer could send it
    event_dispatcher(service_config(world.amqp_uri))("records", "visit_completed", {
        **body, "event_id": "bad-1", "payments": [{"method": "cash", "amount_minor": "ten"}]})
    parked = wait_for(lambda: world.proxy.points.dead_letters(), message="a parked event")
    assert parked[0]["event_id"] == "bad-1" and parked[0]["attempts"] == 1
    assert world.scalar("SELECT count(*) FROM points_postings") == 0
