"""Care journeys from the events of docs/events.md (published here as their owners would) and from the
daily scans, each queued once per cause and sent on the member's terms."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from services.members.events import MemberMerged, MemberStatusChanged, MemberUnmerged, TierChanged
from services.points.events import PointsEarned, PointsExpiring, VisitPointsEarned
from services.points.service import PointsService
from services.records.events import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentRescheduled,
    CarePlanUpdated,
    VisitCancelled,
    VisitCompleted,
)
from tests.harness import wait_for
from tests.integration.notifications.conftest import announce

Y = datetime.now(UTC).year + 1
"""Event handlers run on the real clock: the facts they judge lie in the coming year."""

ANNA = {"full_name": "Anna Smith", "phone": "13800138000", "birth_date": "1990-03-10", "home_branch": "SH01",
        "preferred_language": "en", "consents": {"sms": True, "marketing": True}}
NO_PUSH = {**ANNA, "consents": {}}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def member_id(member: dict) -> uuid.UUID:
    return uuid.UUID(member["id"])


def inbox_bodies(s, member_id: str) -> list[str]:
    return [f"{m['subject']}\n{m['body']}" for m in s.rpc.notifications.inbox(member_id, limit=100)["items"]]


def test_welcome_reaches_the_inbox_in_the_members_language(suite):
    s = suite()
    member = s.enrol(keep_welcome=True, **{**NO_PUSH, "preferred_language": "zh-Hant"})
    s.dispatch(f"{Y}-01-05T02:00:00Z")
    (welcome,) = s.deliveries(member["id"], "welcome")
    assert welcome["state"] == "delivered" and welcome["channel"] == "inbox" and welcome["language"] == "zh-Hant"
    assert any(body.startswith("歡迎加入Smile Dental Group") for body in inbox_bodies(s, member["id"]))


def test_tier_upgrade_congratulates_once_and_a_lowered_tier_says_nothing(suite):
    s = suite()
    member = s.enrol(**NO_PUSH)
    upgrade = announce(TierChanged, member_id=member_id(member), from_tier="standard", to_tier="gold", direction="up",
                       reason="spend", effective_at=at("2026-11-23T08:00:00Z"))
    s.publish(TierChanged, upgrade)
    s.publish(TierChanged, upgrade)  # redelivered
    s.publish(TierChanged, {**upgrade, "event_id": str(uuid.uuid4())})  # re-announced
    s.publish(TierChanged, announce(TierChanged, member_id=member_id(member), from_tier="gold", to_tier="silver",
                                    direction="down", reason="review", effective_at=at("2026-12-01T00:00:00Z")))
    wait_for(lambda: s.deliveries(member["id"], "tier_upgrade"), message="congratulations queued")
    s.dispatch(f"{Y}-01-05T02:00:00Z")
    (upgrade_message,) = s.deliveries(member["id"], "tier_upgrade")
    assert upgrade_message["state"] == "delivered"
    assert any("You are now a Gold member" in body for body in inbox_bodies(s, member["id"]))


def test_points_earned_make_one_daily_digest_not_one_message_per_posting(suite):
    s = suite()
    member = s.enrol(**NO_PUSH)
    morning = announce(PointsEarned, member_id=member_id(member), posting_id="1", points=120, rule="spend",
                       source_ref="bill-1", branch="SH01", earned_at=at(f"{Y}-01-05T02:00:00Z"),
                       expires_on=date(2028, 12, 31))  # 10:00 local
    s.publish(PointsEarned, morning)
    s.publish(PointsEarned, {**morning, "event_id": str(uuid.uuid4())})  # the same posting again
    s.publish(PointsEarned, announce(PointsEarned, member_id=member_id(member), posting_id="2", points=10,
                                     rule="visit", source_ref="v-1", branch="SH01",
                                     earned_at=at(f"{Y}-01-05T07:00:00Z"), expires_on=date(2028, 12, 31)))
    s.publish(PointsEarned, announce(PointsEarned, member_id=member_id(member), posting_id="3", points=30,
                                     rule="review", source_ref="f-1", branch="SH01",
                                     earned_at=at(f"{Y}-01-05T12:00:00Z"),
                                     expires_on=date(2028, 12, 31)))  # 20:00 local: tomorrow's digest
    wait_for(lambda: s.handled("on_points_earned") == 4, message="every posting handled")
    digests = {d["due_at"]: d for d in s.deliveries(member["id"], "points_digest")}
    assert sorted(digests) == [f"{Y}-01-05T11:00:00Z", f"{Y}-01-06T11:00:00Z"]  # 19:00 local, each day

    s.dispatch(f"{Y}-01-05T10:59:59Z")
    assert s.deliveries(member["id"], "points_digest")[0]["state"] == "queued"
    s.dispatch(f"{Y}-01-05T11:00:00Z")
    assert digests[f"{Y}-01-05T11:00:00Z"]["id"] in [d["id"] for d in s.deliveries(member["id"], "points_digest")
                                                     if d["state"] == "delivered"]
    assert any(body.startswith("You earned 130 points") and "in 2 postings" in body
               for body in inbox_bodies(s, member["id"]))


def test_a_visits_postings_in_one_event_go_into_the_days_digest_each_once(suite):
    """Points announce a visit's earn as one ``visit_points_earned`` (issue 17): its postings join the day's digest
    (queued by the day's first visit, found by the next), each counted once, with a ``points_earned`` beside them."""
    s = suite()
    member = s.enrol(**NO_PUSH)

    def visit(postings: list[tuple[str, int, str]], at_utc: str) -> dict:
        return announce(VisitPointsEarned, member_id=member_id(member), visit_id=uuid.uuid4(), earned_at=at(at_utc),
                        postings=[{"posting_id": posting_id, "points": points, "rule": rule}
                                  for posting_id, points, rule in postings])

    morning = visit([("11", 120, "spend"), ("12", 10, "visit")], f"{Y}-01-05T02:00:00Z")  # 10:00 local
    s.publish(VisitPointsEarned, morning)  # the day's first: queues the digest
    s.publish(VisitPointsEarned, {**morning, "event_id": str(uuid.uuid4())})  # the same postings again
    s.publish(VisitPointsEarned, visit([("13", 200, "spend"), ("14", 10, "visit")], f"{Y}-01-05T05:00:00Z"))
    s.publish(VisitPointsEarned, visit([("14", 10, "visit"), ("15", 5, "campaign")], f"{Y}-01-05T06:00:00Z"))
    s.publish(PointsEarned, announce(PointsEarned, member_id=member_id(member), posting_id="16", points=30,
                                     rule="review", source_ref="f-1", branch="SH01",
                                     earned_at=at(f"{Y}-01-05T07:00:00Z"), expires_on=date(2028, 12, 31)))
    wait_for(lambda: s.handled("on_visit_points_earned") == 4 and s.handled("on_points_earned") == 1,
             message="every event handled")
    (digest,) = s.deliveries(member["id"], "points_digest")
    assert digest["due_at"] == f"{Y}-01-05T11:00:00Z"

    s.dispatch(f"{Y}-01-05T11:00:00Z")
    assert any(body.startswith("You earned 375 points") and "in 6 postings" in body
               for body in inbox_bodies(s, member["id"]))


def test_points_expiring_on_one_day_make_one_warning(suite):
    s = suite()
    member = s.enrol(**NO_PUSH)
    for lot, points in (("1", 300), ("2", 200)):
        s.publish(PointsExpiring, announce(PointsExpiring, member_id=member_id(member), lot_id=lot, points=points,
                                           expires_on=date(Y, 12, 31)))
    wait_for(lambda: s.handled("on_points_expiring") == 2, message="both lots handled")
    s.dispatch(f"{Y}-12-01T02:00:00Z")
    (warning,) = s.deliveries(member["id"], "points_expiring")
    assert warning["state"] == "delivered"
    assert any(body.startswith(f"500 points expire on December 31, {Y}") for body in inbox_bodies(s, member["id"]))


def booking(member: dict, appointment_id: uuid.UUID, starts_at: str, occurred_at: str = "2026-11-23T08:00:00Z") -> dict:
    return announce(AppointmentBooked, occurred_at=at(occurred_at), appointment_id=appointment_id,
                    member_id=member_id(member), branch="SH02", doctor_id="d-1", starts_at=at(starts_at),
                    ends_at=at(starts_at), service_category="implant")


def test_appointment_confirmation_and_reminders_move_with_the_appointment_and_stop_when_cancelled(suite):
    s = suite()
    member = s.enrol(**NO_PUSH)
    appointment = uuid.uuid4()
    s.publish(AppointmentBooked, booking(member, appointment, f"{Y}-04-01T02:30:00Z"))
    wait_for(lambda: len(s.deliveries(member["id"])) == 4, message="confirmation and two reminders")
    plan = {(d["journey"], d["due_at"]) for d in s.deliveries(member["id"]) if d["state"] == "queued"}
    assert ("appointment_reminder", f"{Y}-03-31T02:30:00Z") in plan  # 24 h before
    assert ("appointment_reminder", f"{Y}-04-01T00:30:00Z") in plan  # 2 h before (08:30 local)

    s.dispatch(f"{Y}-03-01T02:00:00Z")  # the confirmation, with address and preparation
    confirmation = next(body for body in inbox_bodies(s, member["id"]) if "confirmed" in body)
    assert "100 Century Avenue, Pudong New Area, Shanghai" in confirmation
    assert "arrange for someone to accompany you home" in confirmation  # implant preparation
    assert f"April 1, {Y}" in confirmation and "10:30" in confirmation

    # records does not repeat the service category on a reschedule (its contract has none)
    moved = announce(AppointmentRescheduled, occurred_at=at("2026-11-23T09:00:00Z"), appointment_id=appointment,
                     member_id=member_id(member), branch="SH02", doctor_id="d-1",
                     previous_starts_at=at(f"{Y}-04-01T02:30:00Z"), starts_at=at(f"{Y}-04-02T06:00:00Z"),
                     ends_at=at(f"{Y}-04-02T06:00:00Z"))
    s.publish(AppointmentRescheduled, moved)
    wait_for(lambda: len(s.deliveries(member["id"], "appointment_reminder")) == 4, message="reminders moved")
    s.dispatch(f"{Y}-03-02T02:00:00Z")
    moved_message = next(body for body in inbox_bodies(s, member["id"]) if "has moved" in body)
    assert f"April 2, {Y}" in moved_message and "arrange for someone to accompany you home" in moved_message
    reminders = {d["due_at"]: d["state"] for d in s.deliveries(member["id"], "appointment_reminder")}
    assert reminders == {f"{Y}-03-31T02:30:00Z": "cancelled", f"{Y}-04-01T00:30:00Z": "cancelled",
                         f"{Y}-04-01T06:00:00Z": "queued", f"{Y}-04-02T04:00:00Z": "queued"}
    s.publish(AppointmentCancelled, announce(AppointmentCancelled, occurred_at=at("2026-11-23T10:00:00Z"),
                                             appointment_id=appointment, member_id=member_id(member), branch="SH02",
                                             starts_at=at(f"{Y}-04-02T06:00:00Z"), reason="patient"))
    wait_for(lambda: all(d["state"] != "queued" for d in s.deliveries(member["id"])), message="all cancelled")
    # an old booking event arriving late does not bring the reminders back
    s.publish(AppointmentBooked, booking(member, appointment, f"{Y}-04-01T02:30:00Z"))
    s.publish(TierChanged, announce(TierChanged, member_id=member_id(member), from_tier="standard", to_tier="silver",
                                    direction="up", effective_at=at("2026-11-23T11:00:00Z")))
    wait_for(lambda: s.deliveries(member["id"], "tier_upgrade"), message="a later event handled")
    assert all(d["state"] != "queued" for d in s.deliveries(member["id"]) if d["journey"] != "tier_upgrade")


def test_a_booking_within_24_hours_gets_only_the_reminders_still_ahead(suite):
    s = suite()
    member = s.enrol(**NO_PUSH)
    starts_at = (datetime.now(UTC) + timedelta(hours=20)).replace(microsecond=0)
    s.publish(AppointmentBooked, booking(member, uuid.uuid4(), starts_at.isoformat()))
    wait_for(lambda: s.deliveries(member["id"], "appointment_confirmation"), message="confirmation")
    reminders = s.deliveries(member["id"], "appointment_reminder")
    two_hours_before = (starts_at - timedelta(hours=2)).isoformat().replace("+00:00", "Z")
    assert [d["due_at"] for d in reminders] == [two_hours_before]  # the 24-hour one was already past


def test_a_first_visit_brings_advice_within_hours_and_a_survey_a_week_later(suite):
    s = suite()
    member = s.enrol(**NO_PUSH)
    def completed(who: dict, visit_id: uuid.UUID) -> dict:
        return announce(VisitCompleted, visit_id=visit_id, member_id=member_id(who), branch="SH01", doctor_id="d-1",
                        kind="first", bill_id="b-1", completed_at=at(f"{Y}-05-10T03:00:00Z"), currency="CNY",
                        items=[{"category": "implant", "code": "IMP-1", "amount_minor": 800000}], payments=[],
                        qualifying_minor=800000, first_visit=True, first_paid_visit=True, referral_source=None)

    s.publish(VisitCompleted, completed(member, uuid.uuid4()))
    wait_for(lambda: len(s.deliveries(member["id"])) == 3, message="advice and survey")
    due = {d["journey"]: d["due_at"] for d in s.deliveries(member["id"]) if d["journey"] != "welcome"}
    assert due["post_visit_advice"] == f"{Y}-05-10T05:00:00Z"  # two hours after
    assert due["satisfaction_survey"] == f"{Y}-05-17T02:00:00Z"  # 7 days later at 10:00 local
    s.dispatch(due["post_visit_advice"])
    assert any("Do not rinse hard or spit for 24 hours" in body for body in inbox_bodies(s, member["id"]))
    s.dispatch(f"{Y}-05-17T02:00:00Z")
    assert any(body.startswith("How was your first visit?") for body in inbox_bodies(s, member["id"]))

    another = s.enrol(**{**NO_PUSH, "phone": "13700137000", "full_name": "Wang Fang"})
    second = uuid.uuid4()
    s.publish(VisitCompleted, completed(another, second))
    wait_for(lambda: len(s.deliveries(another["id"])) == 3, message="advice and survey")
    s.publish(VisitCancelled, announce(VisitCancelled, visit_id=second, member_id=member_id(another), branch="SH01"))
    wait_for(lambda: {d["state"] for d in s.deliveries(another["id"]) if d["journey"] != "welcome"} == {"cancelled"},
             message="both cancelled with the visit")


def test_recalls_go_before_the_due_date_then_repeat_and_wait_for_a_booked_visit(suite):
    s = suite()
    member = s.enrol(**NO_PUSH)
    waiting = s.enrol(**{**NO_PUSH, "phone": "13700137000", "full_name": "Wang Fang"})
    for who in (member, waiting):
        s.publish(CarePlanUpdated, announce(CarePlanUpdated, member_id=member_id(who), care_plan_id=uuid.uuid4(),
                                            recall_type="cleaning", recall_interval_months=6,
                                            next_recall_on=date(Y, 6, 30)))
    s.publish(AppointmentBooked, booking(waiting, uuid.uuid4(), f"{Y}-06-10T02:00:00Z"))
    wait_for(lambda: s.deliveries(waiting["id"], "appointment_confirmation"), message="the booking is known")

    early = s.rpc.notifications.run_daily(now=f"{Y}-06-01T16:30:00Z", jobs=["recalls"])  # 00:30, June 2 local
    assert early["recalls"]["finished"] and early["recalls"]["processed"] == 2
    (first,) = s.deliveries(member["id"], "recall")
    assert first["due_at"] == f"{Y}-06-02T02:00:00Z"  # 28 days before it is due, at 10:00
    assert s.deliveries(waiting["id"], "recall") == []  # a visit is booked: no recall message
    again = s.rpc.notifications.run_daily(now=f"{Y}-06-02T08:00:00Z", jobs=["recalls"])
    assert again["recalls"]["skipped"] == "done"

    s.rpc.notifications.run_daily(now=f"{Y}-07-14T01:00:00Z", jobs=["recalls"])  # six weeks later
    assert len(s.deliveries(member["id"], "recall")) == 2
    s.dispatch(f"{Y}-07-14T02:00:00Z")
    assert any(body.startswith("Time to book your cleaning and check-up") and f"June 30, {Y}" in body
               for body in inbox_bodies(s, member["id"]))


def test_birthday_waits_for_points_when_points_does_not_answer_and_never_goes_without_trying(suite):
    s = suite()
    member = s.enrol(**ANNA)
    ran = s.rpc.notifications.run_daily(now="2027-03-09T16:30:00Z", jobs=["birthdays"])  # 00:30 on March 10
    assert ran["birthdays"]["finished"] and ran["birthdays"]["processed"] == 1
    (birthday,) = s.deliveries(member["id"], "birthday")
    assert birthday["due_at"] == "2027-03-10T02:00:00Z" and birthday["category"] == "marketing"

    s.dispatch("2027-03-10T02:00:00Z")  # no points service is running
    waiting = s.rpc.notifications.get_delivery(birthday["id"])
    assert waiting["state"] == "queued" and "points did not answer" in waiting["reason"]
    assert "coupon" not in waiting["context"]
    assert [r for r in s.providers.requests("sms")] == []


@pytest.mark.parametrize(("now", "greeted"), [
    ("2027-02-27T16:30:00Z", True),  # 28 February 2027: no 29th this year
    ("2028-02-27T16:30:00Z", False),  # 28 February 2028: the 29th comes tomorrow
    ("2028-02-28T16:30:00Z", True),  # 29 February 2028
])
def test_29_february_birthdays_are_greeted_on_28_february_in_common_years(suite, now, greeted):
    s = suite()
    member = s.enrol(**{**ANNA, "birth_date": "2000-02-29"})
    s.rpc.notifications.run_daily(now=now, jobs=["birthdays"])
    assert bool(s.deliveries(member["id"], "birthday")) is greeted


def test_birthday_coupon_is_issued_through_points_once(suite, start_service, backend):
    start_service(PointsService, backend)
    s = suite()
    member = s.enrol(**{**ANNA, "consents": {}})
    s.rpc.notifications.run_daily(now="2027-03-09T16:30:00Z", jobs=["birthdays"])
    s.dispatch("2027-03-10T02:00:00Z")
    (birthday,) = s.deliveries(member["id"], "birthday")
    coupon = s.rpc.notifications.get_delivery(birthday["id"])["context"]["coupon"]
    assert coupon["coupon_id"] and coupon["code"] and coupon["value_minor"] == 5000
    assert birthday["state"] == "suppressed"  # no marketing consent: no greeting, but the coupon is theirs
    issued = s.rpc.points.coupons(member["id"])["items"]
    assert [c["id"] for c in issued if c["source"] == "birthday"] == [coupon["coupon_id"]]


def test_mid_autumn_greets_active_members_who_accept_marketing(suite):
    s = suite()
    willing = s.enrol(**ANNA)
    unwilling = s.enrol(**{**ANNA, "phone": "13700137000", "full_name": "Wang Fang", "consents": {"sms": True}})
    ran = s.rpc.notifications.run_daily(now="2027-09-14T16:30:00Z", jobs=["festivals"])  # 15 Sep 2027, 00:30
    assert ran["festivals"]["finished"] and ran["festivals"]["processed"] == 2
    s.dispatch("2027-09-15T02:00:00Z")
    (greeting,) = s.deliveries(willing["id"], "festival")
    assert greeting["state"] == "sent" and greeting["channel"] == "sms"
    (sms,) = [r for r in s.providers.accepted("sms") if r["body"]["To"] == "+8613800138000"]
    assert "Happy Mid-Autumn Festival" in sms["body"]["Body"] and "Reply STOP" in sms["body"]["Body"]
    (refused,) = s.deliveries(unwilling["id"], "festival")
    assert refused["state"] == "suppressed" and refused["reason"].startswith("no_consent")
    assert s.rpc.notifications.run_daily(now="2027-09-16T16:30:00Z", jobs=["festivals"])["festivals"] is None


def test_segment_b_gets_its_monthly_reminder(suite):
    s = suite()
    ran = s.rpc.notifications.run_daily(now="2027-05-01T01:00:00Z", jobs=["segment_b"])
    assert ran["segment_b"]["finished"]
    again = s.rpc.notifications.run_daily(now="2027-05-20T01:00:00Z", jobs=["segment_b"])
    assert again["segment_b"]["skipped"] == "done"  # once a month


def test_a_closed_membership_stops_every_message_and_erases_the_inbox(suite):
    s = suite()
    member = s.enrol(keep_welcome=True, **NO_PUSH)
    s.dispatch(f"{Y}-01-05T02:00:00Z")
    assert inbox_bodies(s, member["id"])
    s.publish(AppointmentBooked, booking(member, uuid.uuid4(), f"{Y}-04-01T02:30:00Z"))
    wait_for(lambda: len(s.deliveries(member["id"])) == 4, message="appointment messages")
    s.publish(MemberStatusChanged, announce(MemberStatusChanged, member_id=member_id(member), from_status="active",
                                            to_status="closed", reason="erasure_request"))
    wait_for(lambda: not s.rpc.notifications.inbox(member["id"])["items"], message="inbox erased")
    states = {d["state"] for d in s.deliveries(member["id"]) if d["journey"] != "welcome"}
    assert states == {"suppressed"}
    assert all(d["reason"].startswith("member_closed") for d in s.deliveries(member["id"])
               if d["journey"] != "welcome")


def test_a_merged_members_inbox_moves_to_the_survivor(suite):
    s = suite()
    survivor = s.enrol(**NO_PUSH)
    merged = s.enrol(keep_welcome=True, **{**NO_PUSH, "phone": "13700137000", "full_name": "Anna Smyth"})
    s.dispatch(f"{Y}-01-05T02:00:00Z")
    s.publish(MemberMerged, announce(MemberMerged, survivor_id=member_id(survivor), merged_id=member_id(merged),
                                     merge_id=uuid.uuid4()))
    wait_for(lambda: s.rpc.notifications.inbox(survivor["id"])["items"], message="inbox moved")
    assert s.rpc.notifications.inbox(merged["id"])["items"] == []


def test_an_unmerge_brings_the_inbox_and_the_recalls_back(suite):
    s = suite()
    survivor = s.enrol(**NO_PUSH)
    merged = s.enrol(keep_welcome=True, **{**NO_PUSH, "phone": "13700137000", "full_name": "Anna Smyth"})
    for who, kind in ((survivor, "cleaning"), (merged, "cleaning"), (merged, "implant_review")):
        s.publish(CarePlanUpdated, announce(CarePlanUpdated, member_id=member_id(who), care_plan_id=uuid.uuid4(),
                                            recall_type=kind, recall_interval_months=6,
                                            next_recall_on=date(Y, 6, 30), status="active"))
    wait_for(lambda: s.handled("on_care_plan_updated") == 3, message="care plans")
    s.dispatch(f"{Y}-01-05T02:00:00Z")
    merge = {"survivor_id": member_id(survivor), "merged_id": member_id(merged), "merge_id": uuid.uuid4()}
    s.publish(MemberMerged, announce(MemberMerged, **merge))
    wait_for(lambda: s.rpc.notifications.inbox(survivor["id"])["items"], message="inbox moved")
    s.rpc.notifications.run_daily(now=f"{Y}-06-01T16:30:00Z", jobs=["recalls"])
    assert [d["state"] for d in s.deliveries(survivor["id"], "recall")] == ["queued", "queued"]  # its own and the moved one
    assert s.deliveries(merged["id"], "recall") == []

    s.publish(MemberUnmerged, announce(MemberUnmerged, **merge))
    wait_for(lambda: s.rpc.notifications.inbox(merged["id"])["items"], message="inbox moved back")
    assert s.rpc.notifications.inbox(survivor["id"])["items"] == []
    s.rpc.notifications.run_daily(now=f"{Y}-06-02T16:30:00Z", jobs=["recalls"])
    assert [d["context"] for d in map(lambda d: s.rpc.notifications.get_delivery(d["id"]),
                                      s.deliveries(merged["id"], "recall"))] == [
        {"recall_type": "cleaning", "due_on": f"{Y}-06-30", "attempt": 1}]  # set aside by the merge, now back


def test_a_closed_care_plan_stops_its_recall(suite):
    s = suite()
    member = s.enrol(**NO_PUSH)
    plan = {"member_id": member_id(member), "care_plan_id": uuid.uuid4(), "recall_type": "cleaning",
            "recall_interval_months": 6, "next_recall_on": date(Y, 6, 30)}
    s.publish(CarePlanUpdated, announce(CarePlanUpdated, **plan, status="active"))
    s.publish(CarePlanUpdated, announce(CarePlanUpdated, occurred_at=at("2026-11-23T09:00:00Z"), **plan,
                                        status="closed"))  # the later fact
    wait_for(lambda: s.handled("on_care_plan_updated") == 2, message="both plan events")
    ran = s.rpc.notifications.run_daily(now=f"{Y}-06-01T16:30:00Z", jobs=["recalls"])
    assert ran["recalls"]["processed"] == 0 and s.deliveries(member["id"], "recall") == []
