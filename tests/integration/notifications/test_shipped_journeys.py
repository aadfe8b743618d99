"""The shipped journeys as composed defaults (issue 20): seeded once however many replicas start, listed, paused
and edited through the journeys API like any other; a composed message carrying a coupon of points' catalogue,
issued once per run and step with two replicas sending; each message previewed in the four languages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import eventlet
import pytest

from services.kit.caller import Identity
from services.kit.errors import Forbidden, Invalid
from services.members.service import MembersService
from services.notifications.composed import SHIPPED_BY, shipped_id
from services.notifications.service import NotificationsService
from services.points.service import PointsService
from services.records.events import VisitCompleted
from services.records.service import RecordsService
from tests.harness import scalar, wait_for
from tests.integration.notifications.conftest import announce, notification_settings
from tests.integration.notifications.test_composed_journeys import ADMIN, LANGUAGES, OTHER_MANAGER, enrol, publish

MANAGER = Identity(kind="staff", subject="mgr-1", role="branch_manager", branches=("SH01",))
SHIPPED = ("welcome", "tier_upgrade", "post_visit_advice", "satisfaction_survey")


@pytest.fixture
def stack(start_service, imitations, backend, rpc):
    """Members, records, points and two notifications replicas on one database (one on SQLite), timers off."""
    start_service(MembersService, backend)
    start_service(RecordsService, backend)
    start_service(PointsService, backend)
    settings = notification_settings(imitations, ("sms",))
    first = start_service(NotificationsService, backend, **settings)
    replicas = [first]
    if backend == "postgresql":
        replicas.append(start_service(NotificationsService, database_url=first.database_url, **settings))
    return rpc(), rpc(caller=ADMIN), replicas


def visit(member_id: str, completed_at: datetime, **changes) -> dict:
    return announce(VisitCompleted, member_id=uuid.UUID(member_id), visit_id=uuid.uuid4(), branch="SH01",
                    completed_at=completed_at, **changes)


def deliveries(proxy, member_id: str, journey: str) -> list[dict]:
    return proxy.notifications.deliveries(member_id, limit=50, journey=journey)["items"]


def handled(replicas, handler: str) -> int:
    return scalar(replicas[0].database_url, "SELECT count(*) FROM kit_inbox WHERE consumer = :c",
                  c=f"notifications.{handler}")


def test_the_shipped_journeys_are_seeded_once_and_managed_like_any_other(stack, amqp_uri, rpc):
    proxy, admin, replicas = stack
    listed = {item["id"]: item for item in admin.notifications.list_journeys({"limit": 100})["items"]}
    assert sorted(listed) == sorted(str(shipped_id(code)) for code in SHIPPED)  # once, whatever the replicas
    assert {item["state"] for item in listed.values()} == {"active"}
    assert {item["created_by"] for item in listed.values()} == {SHIPPED_BY}
    # a branch manager sees none of them: they are for every branch
    assert rpc(caller=MANAGER).notifications.list_journeys({})["items"] == []

    welcome_id = str(shipped_id("welcome"))
    admin.notifications.set_journey_state(welcome_id, "paused", idempotency_key=str(uuid.uuid4()))
    quiet = enrol(proxy, 31, "en")
    wait_for(lambda: handled(replicas, "on_member_enrolled") == 1, timeout=20, message="the enrolment handled")
    assert deliveries(proxy, quiet, "welcome") == []  # paused: no welcome
    admin.notifications.set_journey_state(welcome_id, "active", idempotency_key=str(uuid.uuid4()))
    greeted = enrol(proxy, 32, "es")
    (welcome,) = wait_for(lambda: deliveries(proxy, greeted, "welcome"), timeout=20, message="the welcome")
    assert welcome["state"] == "queued"

    # an edit is a new version: advice four hours after the visit, no longer two
    advice_id = str(shipped_id("post_visit_advice"))
    shipped = admin.notifications.get_journey(advice_id)["definition"]
    edited = {**shipped, "steps": [{"wait": {"hours": 4}}, shipped["steps"][1]]}
    assert admin.notifications.update_journey(advice_id, edited, idempotency_key=str(uuid.uuid4()))["version"] == 2
    completed = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    publish(VisitCompleted, visit(greeted, completed), amqp_uri)
    (advice,) = wait_for(lambda: deliveries(proxy, greeted, "post_visit_advice"), timeout=20, message="advice")
    assert advice["due_at"] == (completed + timedelta(hours=4)).isoformat().replace("+00:00", "Z")
    assert admin.notifications.get_journey(advice_id)["runs"]["finished"] == 1  # planned at once


def coupon_journey(reward_id: str) -> dict:
    words = "Your gift: {{ coupon.code }} ({{ coupon.value_minor }} {{ coupon.currency }}), {{ member.name }}"
    return {"name": "Implant thank-you", "branches": ["SH01"],
            "trigger": {"event": "visit_completed", "categories": ["implant"]},
            "steps": [{"message": {"texts": {language: {"subject": f"Thank you ({language})", "text": words}
                                             for language in LANGUAGES},
                                   "coupon": {"reward_id": reward_id}}}]}


def test_a_composed_message_carries_a_coupon_issued_once_per_run_and_step(stack, amqp_uri, rpc):
    proxy, admin, replicas = stack
    reward = admin.points.create_reward({"code": "IMPL50", "name": "50 off your next cleaning", "kind": "coupon",
                                         "points_price": 500, "coupon": {"category": "cleaning",
                                                                         "value": {"amount": 5000, "currency": "CNY"},
                                                                         "valid_days": 30}},
                                        idempotency_key=str(uuid.uuid4()))
    product = admin.points.create_reward({"code": "BRUSH", "name": "A toothbrush", "kind": "product",
                                          "points_price": 100, "stock": 5}, idempotency_key=str(uuid.uuid4()))
    journey = admin.notifications.create_journey(coupon_journey(str(uuid.uuid4())), idempotency_key=str(uuid.uuid4()))
    for bad in (None, product["id"]):  # a reward nobody has, then one that gives no coupon
        if bad is not None:
            admin.notifications.update_journey(journey["id"], coupon_journey(bad), idempotency_key=str(uuid.uuid4()))
        with pytest.raises(Invalid) as refused:
            admin.notifications.set_journey_state(journey["id"], "active", idempotency_key=str(uuid.uuid4()))
        assert list(refused.value.fields) == ["steps.0.message.coupon.reward_id"]
    assert admin.notifications.get_journey(journey["id"])["state"] == "draft"  # nothing changed
    admin.notifications.update_journey(journey["id"], coupon_journey(reward["id"]), idempotency_key=str(uuid.uuid4()))
    admin.notifications.set_journey_state(journey["id"], "active", idempotency_key=str(uuid.uuid4()))

    member = enrol(proxy, 41, "en")
    publish(VisitCompleted, visit(member, datetime.now(UTC), items=[{"category": "implant", "code": "IM01",
                                                                     "amount_minor": 800000}]), amqp_uri)
    (queued,) = wait_for(lambda: deliveries(proxy, member, "composed"), timeout=20, message="the thank-you")
    assert queued["state"] == "queued"
    noon = (datetime.now(UTC) + timedelta(days=1)).replace(hour=4, minute=0).isoformat()  # 12:00 in Shanghai
    pool = eventlet.GreenPool(4)
    list(pool.imap(lambda _: rpc().notifications.dispatch_due(now=noon), range(4)))  # both replicas at once
    proxy.notifications.dispatch_due(now=noon)
    (sent,) = deliveries(proxy, member, "composed")
    assert sent["state"] == "delivered"
    coupons = admin.points.coupons(member)["items"]
    assert [(c["source"], c["value"]["amount"], c["category"]) for c in coupons] == [("campaign", 5000, "cleaning")]
    body = next(m["body"] for m in proxy.notifications.inbox(member, limit=10)["items"] if "Thank you" in m["subject"])
    assert coupons[0]["code"] in body and "5000 CNY" in body and "Member 41" in body


def test_each_message_is_previewed_in_the_four_languages_for_a_sample_or_a_named_member(stack, rpc):
    proxy, admin, _ = stack
    advice = admin.notifications.preview_journey(str(shipped_id("post_visit_advice")), {})
    (step,) = advice["steps"]
    assert step["step"] == 1 and step["template"] == "post_visit_advice" and sorted(step["languages"]) == sorted(
        LANGUAGES)
    assert step["languages"]["en"]["subject"] == "After your visit: looking after your teeth"
    assert step["languages"]["zh-Hans"]["language"] == "zh-Hans" and "李娜" in step["languages"]["zh-Hans"]["text"]

    reward = admin.points.create_reward({"code": "PREV10", "name": "10% off whitening", "kind": "coupon",
                                         "points_price": 300, "coupon": {"category": "whitening", "rate_bp": 1000,
                                                                         "valid_days": 14}},
                                        idempotency_key=str(uuid.uuid4()))
    journey = admin.notifications.create_journey(coupon_journey(reward["id"]), idempotency_key=str(uuid.uuid4()))
    member = enrol(proxy, 51, "zh-Hant")
    manager = rpc(caller=MANAGER)
    shown = manager.notifications.preview_journey(journey["id"], {"member_id": member, "channel": "email"})
    (step,) = shown["steps"]
    assert shown["member_id"] == member and shown["version"] == 1 and shown["channel"] == "email"
    assert step["coupon"]["code"] == "SAMPLE-0000" and step["coupon"]["rate_bp"] == 1000
    for language in LANGUAGES:
        assert step["languages"][language]["subject"] == f"Thank you ({language})"
        assert "Member 51" in step["languages"][language]["text"] and "SAMPLE-0000" in step["languages"][language][
            "text"]
    assert admin.points.coupons(member)["items"] == []  # a preview issues nothing
    with pytest.raises(Forbidden):
        rpc(caller=OTHER_MANAGER).notifications.preview_journey(journey["id"], {})
    broken = {**coupon_journey(reward["id"]), "steps": [{"message": {"texts": {"en": {
        "subject": "Hi", "text": "Hi {{ member.name "}}}}]}  # a draft: checked at activation, refused here
    draft = admin.notifications.create_journey(broken, idempotency_key=str(uuid.uuid4()))
    with pytest.raises(Invalid) as refused:
        admin.notifications.preview_journey(draft["id"], {})
    assert list(refused.value.fields) == ["steps.0.message.texts"]


def test_the_dry_run_counts_tier_and_segment_conditions_of_event_journeys_with_members(stack, amqp_uri):
    proxy, admin, replicas = stack
    words = {language: {"subject": "Hello", "text": "Hello {{ member.name }}"} for language in LANGUAGES}
    journey = admin.notifications.create_journey(
        {"name": "Gold after a visit", "branches": ["SH01"], "trigger": {"event": "visit_completed", "tiers": ["gold"]},
         "steps": [{"message": {"texts": words}}]}, idempotency_key=str(uuid.uuid4()))
    members = [enrol(proxy, number, "en") for number in (61, 62)]  # both standard
    for member in members:
        publish(VisitCompleted, visit(member, datetime.now(UTC)), amqp_uri)
    wait_for(lambda: handled(replicas, "on_visit_completed") == 2, timeout=20, message="both visits handled")

    gold = admin.notifications.dry_run_journey(journey["id"])
    assert gold["entering"] == 0 and "tier" in gold["method"]  # members says neither is gold
    standard = {"name": "Standard after a visit", "branches": ["SH01"],
                "trigger": {"event": "visit_completed", "tiers": ["standard"]}, "steps": [{"message": {"texts": words}}]}
    admin.notifications.update_journey(journey["id"], standard, idempotency_key=str(uuid.uuid4()))
    assert admin.notifications.dry_run_journey(journey["id"])["entering"] == 2
    graded = {**standard, "trigger": {"event": "visit_completed", "segments": ["B"]}}
    admin.notifications.update_journey(journey["id"], graded, idempotency_key=str(uuid.uuid4()))
    segment = admin.notifications.dry_run_journey(journey["id"])
    assert segment["entering"] == 0 and "segment" in segment["method"]  # nobody graded yet: in no segment
