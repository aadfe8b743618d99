"""Tiers from real events on the real broker, on SQLite and PostgreSQL: upgrades at once, once; refunds
never demote mid-year; the review lowers by one step after notice."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from services.kit.errors import Conflict, Forbidden, Invalid
from services.members.rules.tiers import next_anniversary
from services.records.events import VisitCompleted
from tests.harness import wait_for
from tests.integration.members_world import handled, posting_number, start_world, today

SILVER = 500_000


@pytest.fixture
def world(start_service, rpc, backend, amqp_uri):
    return start_world(start_service, rpc, backend, amqp_uri)


def test_a_visit_crossing_silver_upgrades_at_once_with_one_event_and_one_history_row(world):
    member = world.enrol()
    world.visit(member, SILVER - 1)
    assert world.proxy.members.tier(member)["tier"] == "standard"  # one minor unit below
    crossing = world.visit(member, 1)
    tier = world.proxy.members.tier(member)
    assert tier["tier"] == "silver" and tier["activity"]["spend_minor"] == SILVER
    assert tier["qualifies_for"] == {"tier": "silver", "paths": ["spend"]}
    (changed,) = world.events("tier_changed", member_id=member)
    assert (changed["from_tier"], changed["to_tier"], changed["direction"], changed["reason"]) == \
        ("standard", "silver", "up", "spend")
    history = world.proxy.members.tier_history(member)["items"]
    assert [(h["from_tier"], h["to_tier"], h["reason"], h["source_ref"]) for h in history] == \
        [("standard", "silver", "spend", f"visit:{crossing['visit_id']}")]

    # the same event again: acknowledged, nothing else happens
    duplicates = handled("on_visit_completed", "duplicate")
    world.dispatch("records", "visit_completed", crossing)
    wait_for(lambda: handled("on_visit_completed", "duplicate") > duplicates, message="duplicate acknowledged")
    # the same visit announced again under a new event id: kept once by its visit id
    world.send("records", "visit_completed", {k: v for k, v in crossing.items() if k != "event_id"},
               handler="on_visit_completed")
    assert world.proxy.members.tier(member)["activity"]["spend_minor"] == SILVER
    assert len(world.events("tier_changed", member_id=member)) == 1
    assert len(world.proxy.members.tier_history(member)["items"]) == 1


def test_top_up_points_and_visits_paths_each_upgrade_and_name_their_reason(world):
    by_top_up, by_points, by_visits = world.enrol(), world.enrol(), world.enrol()
    world.top_up(by_top_up, 299_999, bonus_minor=50_000)  # the bonus never counts
    assert world.proxy.members.tier(by_top_up)["tier"] == "standard"
    world.top_up(by_top_up, 1_000_000)
    world.earn(by_points, 20_000)
    for _ in range(5):
        world.visit(by_visits, 0)
    world.visit(by_visits, 0, kind="free_clinic")  # free clinics do not count for tiers
    assert world.proxy.members.tier(by_visits)["tier"] == "standard"
    world.visit(by_visits, 0, kind="emergency")
    reasons = {event["member_id"]: (event["to_tier"], event["reason"]) for event in world.events("tier_changed")}
    assert reasons == {by_top_up: ("gold", "top_up"), by_points: ("gold", "points"), by_visits: ("silver", "visits")}


def test_points_reversed_and_refunds_lower_the_count_but_never_the_tier_mid_year(world):
    member = world.enrol()
    posting = world.earn(member, 5_000)["posting_id"]
    assert world.proxy.members.tier(member)["tier"] == "silver"
    world.reverse_points(member, posting, 3_000)
    tier = world.proxy.members.tier(member)
    assert tier["tier"] == "silver" and tier["activity"]["points"] == 2_000
    assert tier["next"] is None or tier["next"]["tier"] == "gold"


def test_a_managers_adjustment_moves_no_member_up_a_tier(world):
    member = world.enrol()
    opening = world.earn(member, 60_000, rule="adjust")["posting_id"]  # an opening balance brought over
    late = posting_number()
    world.reverse_points(member, late, 500)  # a reversal that overtakes its adjustment
    world.earn(member, 500, posting_id=late, rule="adjust")
    world.reverse_points(member, opening, 10_000)
    tier = world.proxy.members.tier(member)
    assert tier["tier"] == "standard" and tier["activity"]["points"] == 0
    world.earn(member, 5_000)  # points really earned still count
    assert world.proxy.members.tier(member)["tier"] == "silver"


def test_facts_arriving_out_of_order_add_up_the_same(world):
    member = world.enrol()
    late_visit = uuid.uuid4()
    world.refund(member, late_visit, 100_000)  # the refund overtook its visit
    world.visit(member, SILVER, visit_id=late_visit)
    assert world.proxy.members.tier(member)["activity"]["spend_minor"] == SILVER - 100_000
    late_posting = posting_number()
    world.reverse_points(member, late_posting, 1_000)  # the reversal overtook its posting
    world.earn(member, 5_000, posting_id=late_posting)
    tier = world.proxy.members.tier(member)
    assert tier["activity"]["points"] == 4_000 and tier["tier"] == "standard"


def test_a_fully_refunded_visit_counts_neither_spend_nor_visit(world):
    member = world.enrol()
    visit = world.visit(member, 300_000)["visit_id"]
    world.refund(member, visit, 300_000, full=True)
    lifetime = world.proxy.members.tier(member)["lifetime"]
    assert (lifetime["visits"], lifetime["spend_minor"]) == (0, 0)


def test_refund_below_threshold_keeps_the_tier_until_the_review_drops_one_step_after_notice(world):
    refunded, steady = world.enrol(), world.enrol()
    visit = world.visit(refunded, 2_000_000)["visit_id"]
    world.visit(steady, 2_000_000)
    world.refund(refunded, visit, 1_500_001)  # 12-month spend now 499,999: not even silver
    assert world.proxy.members.tier(refunded)["tier"] == "gold"  # never demoted mid-year
    review_day = next_anniversary(today(), today())
    assert world.proxy.members.tier(refunded)["next_review_on"] == review_day.isoformat()

    assert world.night(review_day - timedelta(days=1))["jobs"]["tier_reviews"]["processed"] == 0
    outcome = world.night(review_day)
    reviews = outcome["jobs"]["tier_reviews"]
    assert (reviews["finished"], reviews["processed"], reviews["batches"], reviews["skipped"]) == (True, 2, 1, None)
    (notice,) = world.events("tier_review_notice")
    effective = review_day + timedelta(days=30)
    assert notice == {**notice, "member_id": refunded, "current_tier": "gold", "next_tier": "silver",
                      "effective_on": effective.isoformat()}
    tier = world.proxy.members.tier(refunded)
    assert tier["tier"] == "gold" and tier["pending"] == {"tier": "silver", "effective_on": effective.isoformat()}
    assert tier["next_review_on"] == next_anniversary(today(), review_day).isoformat()

    world.night(effective - timedelta(days=1))
    assert world.proxy.members.tier(refunded)["tier"] == "gold"
    world.night(effective)
    assert world.proxy.members.tier(refunded)["tier"] == "silver"  # one step, though the 12 months earn nothing
    assert world.proxy.members.tier(steady)["tier"] == "gold"
    down = world.events("tier_changed", member_id=refunded, direction="down")
    assert [(e["from_tier"], e["to_tier"], e["reason"]) for e in down] == [("gold", "silver", "review")]
    assert world.proxy.members.tier_history(refunded)["items"][0]["reason"] == "review"
    assert world.night(effective)["jobs"]["tier_reviews"]["skipped"] == "done"  # once per day


def test_earning_the_tier_again_during_the_notice_withdraws_it(world):
    member = world.enrol()
    visit = world.visit(member, SILVER)["visit_id"]
    world.refund(member, visit, 1)
    review_day = next_anniversary(today(), today())
    world.night(review_day)
    assert world.proxy.members.tier(member)["pending"]["tier"] == "standard"
    world.visit(member, 1)  # back at the threshold: the notice is withdrawn on the spot
    assert world.proxy.members.tier(member)["pending"] is None
    world.night(review_day + timedelta(days=30))
    assert world.proxy.members.tier(member)["tier"] == "silver"


def test_reviews_run_in_bounded_batches_and_resume(start_service, rpc, backend, amqp_uri):
    world = start_world(start_service, rpc, backend, amqp_uri, TIER_REVIEW_BATCH=2)
    members = [world.enrol() for _ in range(5)]
    for member in members:
        world.visit(member, SILVER)
    day = next_anniversary(today(), today())
    first = world.night(day, max_batches=2)["jobs"]
    reviews = first["tier_reviews"]
    assert (reviews["finished"], reviews["processed"], reviews["batches"], reviews["skipped"]) == (False, 4, 2, None)
    assert "segments" not in first  # a job waits for the one before it
    rest = world.night(day)["jobs"]
    assert rest["tier_reviews"]["processed"] == 1 and rest["tier_reviews"]["finished"]
    assert rest["segments"]["finished"]
    # the 12 months judged end the day before the anniversary: today's visits still count, all keep silver
    assert world.events("tier_review_notice") == []
    for member in members:
        tier = world.proxy.members.tier(member)
        assert tier["tier"] == "silver" and tier["next_review_on"] == next_anniversary(today(), day).isoformat()


@pytest.mark.parametrize(("starts", "runs"), [("00:00", True), ("off", False)])
def test_the_timer_runs_the_night_once_it_is_late_enough(start_service, rpc, backend, amqp_uri, starts, runs):
    from nameko.testing.services import entrypoint_hook

    world = start_world(start_service, rpc, backend, amqp_uri, NIGHTLY_AT=starts)
    world.enrol()
    with entrypoint_hook(world.container, "nightly_tick") as tick:
        tick()
    done = world.rows("SELECT job FROM kit_job_runs WHERE run_key = :day AND finished_at IS NOT NULL ORDER BY job",
                      day=today().isoformat())
    assert [row[0] for row in done] == (["segments", "tier_notices", "tier_reviews", "windows"] if runs else [])


def test_only_group_admins_run_the_night_and_never_a_future_day(world, rpc):
    from services.kit.caller import Identity

    desk = rpc(caller=Identity(kind="staff", subject="u1", role="front_desk", branches=("SH01",)))
    with pytest.raises(Forbidden):
        desk.members.run_nightly()
    admin = rpc(caller=Identity(kind="staff", subject="u0", role="group_admin", branches=("*",)))
    with pytest.raises(Conflict):
        admin.members.run_nightly((today() + timedelta(days=1)).isoformat())
    with pytest.raises(Invalid):
        admin.members.run_nightly("tomorrow")
    assert admin.members.run_nightly()["day"] == today().isoformat()


def test_a_bad_event_is_parked_at_once_and_changes_nothing(world):
    member = world.enrol()
    parked = handled("on_visit_completed", "dead_lettered")
    in_usd = world.publish(VisitCompleted, visit_id=uuid.uuid4(), member_id=uuid.UUID(member), currency="USD",
                           qualifying_minor=900_000)["visit_id"]
    of_nobody = world.publish(VisitCompleted, visit_id=uuid.uuid4(), member_id=uuid.UUID(int=0),
                              qualifying_minor=900_000)["visit_id"]
    wait_for(lambda: handled("on_visit_completed", "dead_lettered") >= parked + 2, message="parked")
    assert {d["payload"]["visit_id"] for d in world.proxy.members.dead_letters()} >= {in_usd, of_nobody}
    assert world.proxy.members.tier(member)["tier"] == "standard"
    assert world.rows("SELECT count(*) FROM member_visits")[0][0] == 0


def test_a_group_admin_sets_a_tier_by_hand_with_a_note(world, rpc):
    from services.kit.caller import Identity

    member = world.enrol()
    admin = rpc(caller=Identity(kind="staff", subject="u0", role="group_admin", branches=("*",)))
    tier = admin.members.change_tier(member, {"tier": "gold", "note": "goodwill after complaint 42"},
                                     idempotency_key="manual-1")
    assert tier["tier"] == "gold"
    again = admin.members.change_tier(member, {"tier": "gold", "note": "goodwill after complaint 42"},
                                      idempotency_key="manual-1")
    assert again["tier"] == "gold"
    (entry,) = world.proxy.members.tier_history(member)["items"]
    assert (entry["reason"], entry["note"], entry["actor"]) == ("manual", "goodwill after complaint 42",
                                                                 "staff:u0 (group_admin)")
    desk = rpc(caller=Identity(kind="staff", subject="u1", role="front_desk", branches=("SH01",)))
    with pytest.raises(Forbidden):
        desk.members.change_tier(member, {"tier": "diamond", "note": "please"})
    with pytest.raises(Invalid):
        admin.members.change_tier(member, {"tier": "platinum", "note": "no such tier"})
