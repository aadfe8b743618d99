"""Journeys that managers compose (issue 20 item 6): built through the RPCs staff reach over the gateway,
started by the events their owners send, driven by the scheduler of two replicas, each message once, each
task once in records' queue, exits honoured, versions kept per run, and a dry run of the last week."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import eventlet
import pytest

from services.kit.caller import Identity
from services.kit.errors import Conflict, Forbidden, Invalid
from services.members.service import MembersService
from services.notifications.service import NotificationsService
from services.records.events import AppointmentBooked, VisitCompleted
from services.records.service import RecordsService
from tests.harness import wait_for
from tests.integration.notifications.conftest import announce, notification_settings

ADMIN = Identity(kind="staff", subject="admin-1", role="group_admin", branches=("*",))
MANAGER = Identity(kind="staff", subject="mgr-1", role="branch_manager", branches=("SH01",))
OTHER_MANAGER = Identity(kind="staff", subject="mgr-2", role="branch_manager", branches=("SH02",))
DESK = Identity(kind="staff", subject="desk-1", role="front_desk", branches=("SH01",))
LANGUAGES = ("en", "zh-Hans", "zh-Hant", "es")


def texts(words: str) -> dict[str, dict[str, str]]:
    return {language: {"subject": f"{words} ({language})", "text": f"{words} ({language}), {{{{ member.name }}}}, "
                       "{{ branch.name }}"} for language in LANGUAGES}


def post_op(words: str = "Post-op advice v1", **changes) -> dict:
    """The issue's example: 3 days after an implant visit at SH01, advice in the member's language and a call in
    the consultant queue; stop if the member booked."""
    return {"name": "Implant post-op", "branches": ["SH01"],
            "trigger": {"event": "visit_completed", "categories": ["implant"]},
            "steps": [{"wait": {"days": 3}}, {"message": {"texts": texts(words)}},
                      {"task": {"queue": "consultant", "note": "Ask how the implant feels"}}],
            "exits": ["appointment_booked"], **changes}


@pytest.fixture
def stack(start_service, databases, imitations, backend, rpc):
    """Members, records and two notifications replicas on one database (scheduler timers off: the test drives
    the scheduler with ``dispatch_due`` and a business clock)."""
    start_service(MembersService, backend)
    start_service(RecordsService, backend)
    settings = notification_settings(imitations, ("sms",))
    first = start_service(NotificationsService, backend, **settings)
    replicas = [first]
    if backend == "postgresql":  # SQLite is one process per service
        replicas.append(start_service(NotificationsService, database_url=first.database_url, **settings))
    return rpc(), rpc(caller=ADMIN), replicas


def implant_visit(member_id: str, branch: str = "SH01", category: str = "implant") -> dict:
    return announce(VisitCompleted, member_id=uuid.UUID(member_id), visit_id=uuid.uuid4(), branch=branch,
                    completed_at=datetime.now(UTC), items=[{"category": category, "code": "IM01",
                                                            "amount_minor": 800000}])


def publish(contract, body, amqp_uri):
    from nameko.standalone.events import event_dispatcher

    from tests.harness import service_config
    event_dispatcher(service_config(amqp_uri))(contract.producer, contract.event_type, body)


def runs(admin, journey_id) -> dict:
    return admin.notifications.get_journey(journey_id)["runs"]


def composed_messages(proxy, member_id) -> list[dict]:
    return proxy.notifications.deliveries(member_id, limit=100, journey="composed")["items"]


def enrol(proxy, number: int, language: str) -> str:
    member = proxy.members.enrol({"full_name": f"Member {number}", "phone": f"1380013{number:04d}",
                                  "birth_date": "1980-01-01", "home_branch": "SH01", "preferred_language": language})
    return member["id"]


def test_the_issues_journey_runs_end_to_end_once_per_member_with_exits_versions_and_a_dry_run(stack, amqp_uri,
                                                                                               rpc, backend):
    proxy, admin, replicas = stack
    draft = admin.notifications.create_journey(post_op(steps=[{"wait": {"days": 3}}, {"message": {"texts": {
        "en": {"subject": "Only English", "text": "Only English"}}}}]), idempotency_key=str(uuid.uuid4()))
    assert draft["state"] == "draft" and draft["version"] == 1
    with pytest.raises(Invalid) as refused:  # a draft may lack languages; activation may not
        admin.notifications.set_journey_state(draft["id"], "active", idempotency_key=str(uuid.uuid4()))
    assert {"steps.1.message.texts.es", "steps.1.message.texts.zh-Hans"} <= set(refused.value.fields)
    assert admin.notifications.get_journey(draft["id"])["state"] == "draft"  # nothing changed

    journey_id = draft["id"]
    manager = rpc(caller=MANAGER)  # a branch manager of SH01 may finish and run a journey of SH01
    second = manager.notifications.update_journey(journey_id, post_op(), idempotency_key=str(uuid.uuid4()))
    assert second["version"] == 2 and [v["version"] for v in second["versions"]] == [1, 2]
    assert manager.notifications.set_journey_state(journey_id, "active",
                                                   idempotency_key=str(uuid.uuid4()))["state"] == "active"

    anna, bo, dee = enrol(proxy, 1, "zh-Hans"), enrol(proxy, 2, "en"), enrol(proxy, 3, "es")
    proxy.notifications.set_preferences(dee, {"do_not_contact": True}, idempotency_key=str(uuid.uuid4()))
    visit = implant_visit(anna)
    for body in (visit, visit, implant_visit(bo), implant_visit(dee), implant_visit(anna, branch="SH02"),
                 implant_visit(bo, category="cleaning")):
        publish(VisitCompleted, body, amqp_uri)  # anna's visit twice (a redelivery); SH02 and cleaning start nothing
    wait_for(lambda: runs(admin, journey_id)["running"] == 3, timeout=20, message="three runs started")

    # an edit while they run: new runs start on version 3, the three started keep version 2
    admin.notifications.update_journey(journey_id, post_op("Post-op advice v3"), idempotency_key=str(uuid.uuid4()))
    eve = enrol(proxy, 4, "en")
    publish(VisitCompleted, implant_visit(eve), amqp_uri)
    wait_for(lambda: runs(admin, journey_id)["running"] == 4, timeout=20, message="eve's run started")

    booked = announce(AppointmentBooked, member_id=uuid.UUID(bo), appointment_id=uuid.uuid4(), branch="SH01",
                      starts_at=datetime.now(UTC) + timedelta(days=10), ends_at=datetime.now(UTC) + timedelta(days=10,
                                                                                                             hours=1))
    publish(AppointmentBooked, booked, amqp_uri)
    wait_for(lambda: runs(admin, journey_id)["exited"] == 1, timeout=20, message="bo's run ended by the booking")

    # now: each run takes its first step (the wait); dee's ends there, she asked not to be contacted
    first_step = proxy.notifications.dispatch_due(now=datetime.now(UTC).isoformat())
    assert first_step.get("runs_waiting") == 2 and first_step.get("runs_exited") == 1
    assert not first_step.get("runs_finished")
    # four days on, 11:00 in Shanghai (outside quiet hours); both replicas run their schedulers at once
    later = (datetime.now(UTC) + timedelta(days=4)).replace(hour=3, minute=0).isoformat()
    pool = eventlet.GreenPool(4)
    outcomes = list(pool.imap(lambda _: rpc().notifications.dispatch_due(now=later), range(4)))
    assert sum(o.get("runs_finished", 0) for o in outcomes) == 2  # anna and eve

    (to_anna,) = composed_messages(proxy, anna)
    assert to_anna["state"] == "delivered" and to_anna["channel"] == "inbox" and to_anna["language"] == "zh-Hans"
    inbox = proxy.notifications.inbox(anna, limit=10)["items"]
    (advice,) = [m for m in inbox if "Post-op" in m["subject"]]
    assert advice["subject"] == "Post-op advice v1 (zh-Hans)" and "Member 1" in advice["body"]
    (to_eve,) = composed_messages(proxy, eve)
    assert any(m["subject"] == "Post-op advice v3 (en)" for m in proxy.notifications.inbox(eve, limit=10)["items"])
    assert to_eve["state"] == "delivered"
    assert composed_messages(proxy, bo) == [] and composed_messages(proxy, dee) == []

    tasks = admin.records.member_follow_ups(anna)["items"]
    (call,) = [t for t in tasks if t["state"] == "journey"]
    assert call["queue"] == "consultant" and call["branch"] == "SH01" and call["notes"] == "Ask how the implant feels"
    assert [t for t in admin.records.member_follow_ups(bo)["items"] if t["state"] == "journey"] == []

    again = proxy.notifications.dispatch_due(now=later)  # nothing twice
    assert not again.get("runs_finished") and len(composed_messages(proxy, anna)) == 1
    assert runs(admin, journey_id) == {"running": 0, "finished": 2, "exited": 2}

    dry = admin.notifications.dry_run_journey(journey_id)
    # the last week's implant visits at SH01: anna, bo, dee, eve (one each); dee asked not to be contacted (the
    # dry run counts that now); bo booked within the 3-day wait
    assert dry["entering"] == 3 and [s["members"] for s in dry["steps"]] == [3, 2, 2]
    assert "last 7 days" in dry["method"] and "do not contact" in dry["method"]


def test_what_a_manager_may_not_do(stack, rpc):
    proxy, admin, _ = stack
    with pytest.raises(Invalid) as unknown:
        admin.notifications.create_journey(post_op(trigger={"event": "visit_started"}),
                                           idempotency_key=str(uuid.uuid4()))
    assert "event" in unknown.value.fields["trigger"]
    with pytest.raises(Forbidden):  # another branch's journey
        rpc(caller=OTHER_MANAGER).notifications.create_journey(post_op(), idempotency_key=str(uuid.uuid4()))
    with pytest.raises(Forbidden):  # every branch: group admins only
        rpc(caller=MANAGER).notifications.create_journey(post_op(branches=[]), idempotency_key=str(uuid.uuid4()))
    with pytest.raises(Forbidden):
        rpc(caller=DESK).notifications.create_journey(post_op(), idempotency_key=str(uuid.uuid4()))
    bad_queue = post_op(steps=[{"message": {"texts": texts("x")}}, {"task": {"queue": "dentists"}}])
    journey = admin.notifications.create_journey(bad_queue, idempotency_key=str(uuid.uuid4()))
    with pytest.raises(Invalid) as refused:
        admin.notifications.set_journey_state(journey["id"], "active", idempotency_key=str(uuid.uuid4()))
    assert "steps.1.task.queue" in refused.value.fields
    with pytest.raises(Forbidden):
        rpc(caller=OTHER_MANAGER).notifications.get_journey(journey["id"])
    listed = rpc(caller=OTHER_MANAGER).notifications.list_journeys({})["items"]
    assert journey["id"] not in [item["id"] for item in listed]
    admin.notifications.set_journey_state(journey["id"], "retired", idempotency_key=str(uuid.uuid4()))
    with pytest.raises(Conflict):
        admin.notifications.update_journey(journey["id"], post_op(), idempotency_key=str(uuid.uuid4()))


def test_a_scheduled_journey_reaches_its_branchs_active_members_once_that_day(stack, rpc):
    proxy, admin, _ = stack
    today = datetime.now(UTC) + timedelta(hours=8)  # Shanghai's day
    definition = {"name": "Member day", "category": "service", "branches": ["SH01"],
                  "trigger": {"schedule": {"every": "week", "weekday": today.isoweekday()}},
                  "steps": [{"message": {"texts": texts("Member day")}}]}
    journey = admin.notifications.create_journey(definition, idempotency_key=str(uuid.uuid4()))
    admin.notifications.set_journey_state(journey["id"], "active", idempotency_key=str(uuid.uuid4()))
    members = [enrol(proxy, number, "en") for number in (11, 12)]
    wait_for(lambda: all(proxy.notifications.deliveries(m, limit=5, journey="welcome")["items"] for m in members),
             timeout=20, message="both in the audience")
    assert admin.notifications.dry_run_journey(journey["id"])["entering"] >= 2
    for _ in range(2):  # a second run of the day adds nothing
        proxy.notifications.run_daily(jobs=["composed"])
    assert runs(admin, journey["id"])["running"] == 2
    noon = today.replace(hour=4, minute=0)  # Shanghai's noon: inside the sending hours
    if noon <= datetime.now(UTC):  # past it (04:00-16:00 UTC): the runs, due now, are due by the next one
        noon += timedelta(days=1)
    proxy.notifications.dispatch_due(now=noon.isoformat())
    for member in members:
        (message,) = composed_messages(proxy, member)
        assert message["state"] == "delivered"
