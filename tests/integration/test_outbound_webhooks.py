"""Outbound webhooks with a local HTTP receiver (real RabbitMQ; PostgreSQL, and SQLite): a subscription to
``tier_changed`` receives the event signed with its secret; a target that fails twice then recovers gets the
event exactly once more (three attempts, one 2xx, logged); a target whose retry window runs out is parked and
a replay delivers it; a target outside the allowlist is refused at subscription time."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import eventlet
import pytest
from eventlet import wsgi

from services.interfaces.service import InterfacesService
from services.kit import signing
from services.kit.caller import Identity
from services.kit.errors import Forbidden, Invalid
from services.members.service import MembersService
from tests.harness import query, scalar, wait_for

ADMIN = Identity(kind="staff", subject="admin-1", role="group_admin", branches=("*",))
FRONT_DESK = Identity(kind="staff", subject="desk-1", role="front_desk", branches=("SH01",))
QUICK = {"WEBHOOK_ALLOWED_HOSTS": "127.0.0.1,*.example.org", "WEBHOOK_RETRY_BASE_SECONDS": 0.2,
         "WEBHOOK_RETRY_MAX_SECONDS": 0.5, "GATE_RECONCILE_SECONDS": 0.3}


class Receiver:
    """A local HTTP target: records every request, answers the scripted statuses first, then 204."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[int] = []
        self.sock = eventlet.listen(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hooks"
        self.thread = eventlet.spawn(wsgi.server, self.sock, self._app, log_output=False)

    def _app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        headers = {key[5:].replace("_", "-").title(): value for key, value in environ.items()
                   if key.startswith("HTTP_")}
        status = self.script.pop(0) if self.script else 204
        self.requests.append({"headers": headers, "body": body, "status": status})
        start_response(f"{status} Scripted", [("Content-Length", "0")])
        return [b""]

    def stop(self) -> None:
        self.thread.kill()
        self.sock.close()


@pytest.fixture
def world(start_service, rpc, backend):
    members = start_service(MembersService, backend)
    interfaces = start_service(InterfacesService, backend, **QUICK)
    receiver = Receiver()
    yield members, interfaces, receiver, rpc(caller=ADMIN)
    receiver.stop()


def _member(admin: Any) -> str:
    return admin.members.enrol({"full_name": "Chen Jing", "phone": "13800138555", "birth_date": "1980-02-03",
                                "home_branch": "SH01"})["id"]


def _subscribe(admin: Any, url: str, event_type: str = "tier_changed") -> dict[str, Any]:
    return admin.interfaces.subscribe({"integration": "crm-east", "event_type": event_type, "target_url": url},
                                      idempotency_key=f"sub-{event_type}-{url}")


def test_tier_changed_is_received_signed(world):
    _members, interfaces, receiver, admin = world
    subscription = _subscribe(admin, receiver.url)
    assert subscription["secret"].startswith("whsec_") and subscription["active"] is True
    # the secret is stored encrypted
    assert subscription["secret"] not in scalar(interfaces.database_url, "SELECT secret FROM webhook_subscriptions")
    member_id = _member(admin)
    admin.members.change_tier(member_id, {"tier": "gold", "note": "VIP"}, idempotency_key="t-1")
    # the run's vhost is shared: a tier_changed another test left in interfaces' queue may come too
    (received,) = wait_for(lambda: _for(receiver, member_id), timeout=20, message="the delivery")
    headers = received["headers"]
    assert signing.verify(subscription["secret"], headers, received["body"])
    assert not signing.verify("whsec_someone-else", headers, received["body"])
    body = json.loads(received["body"])
    assert body["event_type"] == "tier_changed" and headers["X-Careloop-Event"] == "tier_changed"
    assert (body["data"]["member_id"], body["data"]["from_tier"], body["data"]["to_tier"]) == (
        member_id, "standard", "gold")
    # the receiver has the request before interfaces records its answer: wait for the record
    log = wait_for(lambda: [d for d in admin.interfaces.webhook_deliveries(subscription["id"], {})["items"]
                            if d["id"] == headers["X-Careloop-Delivery"] and d["state"] != "pending"],
                   timeout=20, message="the delivery recorded")
    assert [(d["state"], d["attempts"]) for d in log] == [("delivered", 1)]
    assert [a["status"] for a in log[0]["log"]] == [204]
    # the enrolment was not subscribed to: nothing else was sent, for this member or anyone
    assert len(_for(receiver, member_id)) == 1
    assert {json.loads(request["body"])["event_type"] for request in receiver.requests} == {"tier_changed"}


def _for(receiver: Receiver, member_id: str) -> list[dict[str, Any]]:
    return [request for request in receiver.requests if json.loads(request["body"])["data"]["member_id"] == member_id]


def test_a_target_failing_twice_then_recovering_gets_the_event_exactly_once_more(world):
    _members, interfaces, receiver, admin = world
    subscription = _subscribe(admin, receiver.url)
    receiver.script = [503, 500]
    member_id = _member(admin)
    admin.members.change_tier(member_id, {"tier": "silver", "note": "promo"}, idempotency_key="t-2")
    wait_for(lambda: scalar(interfaces.database_url, "SELECT count(*) FROM webhook_deliveries "
                                                     "WHERE state = 'delivered'") == 1, timeout=30,
             message="the delivery to succeed")
    assert [r["status"] for r in receiver.requests] == [503, 500, 204]
    assert len({r["headers"]["X-Careloop-Delivery"] for r in receiver.requests}) == 1  # one delivery, three tries
    # nothing more comes: the delivered event is not sent again (a few ticks of the sender pass)
    ticks = scalar(interfaces.database_url, "SELECT count(*) FROM webhook_attempts")
    eventlet.sleep(1.5)
    assert len(receiver.requests) == 3 and scalar(interfaces.database_url,
                                                  "SELECT count(*) FROM webhook_attempts") == ticks == 3
    log = admin.interfaces.webhook_deliveries(subscription["id"], {})["items"][0]
    assert [a["status"] for a in log["log"]] == [503, 500, 204] and log["attempts"] == 3


def test_a_delivery_whose_window_ran_out_is_parked_and_replayed_by_hand(start_service, rpc, backend):
    start_service(MembersService, backend)
    interfaces = start_service(InterfacesService, backend, **{**QUICK, "WEBHOOK_RETRY_HOURS": 0.0002})  # ~0.7 s
    receiver = Receiver()
    admin = rpc(caller=ADMIN)
    try:
        subscription = _subscribe(admin, receiver.url, "member_enrolled")
        receiver.script = [500] * 50
        _member(admin)
        wait_for(lambda: scalar(interfaces.database_url, "SELECT count(*) FROM webhook_deliveries "
                                                         "WHERE state = 'parked'") == 1, timeout=30, message="parking")
        tried = len(receiver.requests)
        assert tried >= 1
        receiver.script = []
        delivery = admin.interfaces.webhook_deliveries(subscription["id"], {})["items"][0]
        replayed = admin.interfaces.replay_webhook_delivery(subscription["id"], delivery["id"], idempotency_key="r-1")
        assert replayed["state"] == "pending"
        wait_for(lambda: scalar(interfaces.database_url, "SELECT count(*) FROM webhook_deliveries "
                                                         "WHERE state = 'delivered'") == 1, timeout=20, message="replay")
        assert receiver.requests[-1]["status"] == 204 and len(receiver.requests) == tried + 1
    finally:
        receiver.stop()


def test_a_target_outside_the_allowlist_is_refused_at_subscription(world):
    _members, interfaces, _receiver, admin = world
    for url in ("http://10.0.0.5/hooks", "http://169.254.169.254/latest/meta-data", "https://evil.example.com/x",
                "https://example.org/x", "ftp://127.0.0.1/x", "http://user:pw@127.0.0.1/x"):
        with pytest.raises(Invalid) as refused:
            admin.interfaces.subscribe({"integration": "crm-east", "event_type": "tier_changed", "target_url": url})
        assert "target_url" in refused.value.fields, url
    assert admin.interfaces.subscribe({"integration": "crm-east", "event_type": "points_earned",
                                       "target_url": "https://crm.example.org/hooks"})["active"] is True
    assert scalar(interfaces.database_url, "SELECT count(*) FROM webhook_subscriptions") == 1


def test_only_group_admins_manage_subscriptions(world, rpc):
    _members, _interfaces, receiver, _admin = world
    with pytest.raises(Forbidden):
        rpc(caller=FRONT_DESK).interfaces.subscribe({"integration": "crm-east", "event_type": "tier_changed",
                                                     "target_url": receiver.url})
    assert query(_interfaces.database_url, "SELECT id FROM webhook_subscriptions") == []


def _bound(amqp_uri: str, queue: str) -> set[tuple[str, str]]:
    """(exchange, routing key) of each binding of ``queue``, as the broker has them (``rabbitmqctl``)."""
    vhost = amqp_uri.rsplit("/", 1)[1]
    out = subprocess.run(["rabbitmqctl", "-q", "list_bindings", "-p", vhost, "--no-table-headers", "source_name",
                          "destination_name", "routing_key"], check=True, capture_output=True, text=True,
                         timeout=60).stdout
    rows = (line.split("\t") for line in out.splitlines())
    return {(source, key) for source, destination, key in rows if destination == queue and source}


def queued(amqp_uri: str, queue: str) -> int:
    """Messages ready in ``queue`` (the broker's count)."""
    from kombu import Connection

    with Connection(amqp_uri) as connection:
        return connection.default_channel.queue_declare(queue=queue, passive=True).message_count


ENROLLED_QUEUE = "evt-members-member_enrolled--interfaces.on_member_enrolled"


def _published(event_type: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("careloop_outbox_published_total",
                                     {"service": "members", "event_type": event_type}) or 0


def test_an_event_nobody_subscribes_to_is_dropped_by_the_broker(world, amqp_uri):
    """Interfaces' webhook queues are bound only while an integration subscribes to their type (``kit.gates``):
    an enrolment nobody subscribes to never reaches interfaces; once subscribed, the next one is delivered."""
    from tests.harness import events_handled

    _members, interfaces, receiver, admin = world
    assert _bound(amqp_uri, ENROLLED_QUEUE) == set()
    handled = sum(events_handled("interfaces", "on_member_enrolled", outcome) for outcome in ("ok", "not_wanted"))
    published = _published("member_enrolled")
    first = _member(admin)  # member_enrolled: no subscriber yet
    wait_for(lambda: _published("member_enrolled") > published, timeout=20, message="the enrolment published")
    # published with the broker's confirm: routed (or dropped) already
    assert queued(amqp_uri, ENROLLED_QUEUE) == 0
    assert sum(events_handled("interfaces", "on_member_enrolled", outcome)
               for outcome in ("ok", "not_wanted")) == handled
    _subscribe(admin, receiver.url, "member_enrolled")
    assert _bound(amqp_uri, ENROLLED_QUEUE) == {("members.events", "member_enrolled")}  # when subscribe answers
    second = admin.members.enrol({"full_name": "Lu Yan", "phone": "13800138556", "birth_date": "1981-03-04",
                                  "home_branch": "SH01"})["id"]
    wait_for(lambda: receiver.requests, timeout=20, message="the subscribed event's delivery")
    delivered = [json.loads(request["body"])["data"]["member_id"] for request in receiver.requests]
    assert delivered == [second] and first != second  # the one before the subscription is not sent
    assert scalar(interfaces.database_url, "SELECT count(*) FROM kit_inbox") == 1


def test_an_event_arriving_after_the_last_unsubscribe_costs_one_read_and_the_queue_is_unbound_soon(world, amqp_uri):
    """Unsubscribing touches no broker; the gate closes at the next reconcile (``GATE_RECONCILE_SECONDS``). An
    event still arriving meanwhile is turned down by one read: no transaction, no inbox row, no delivery."""
    from nameko.standalone.events import event_dispatcher

    from services.kit.clock import isoformat, utcnow
    from services.kit.gates import Gates
    from services.members.events import EVENTS, MemberEnrolled
    from tests.harness import events_handled, service_config, store_for

    _members, interfaces, receiver, admin = world
    subscription = _subscribe(admin, receiver.url, "member_enrolled")
    admin.interfaces.unsubscribe(subscription["id"])
    wait_for(lambda: _bound(amqp_uri, ENROLLED_QUEUE) == set(), timeout=20, message="the gate closed")
    # an event in flight at the unsubscribe: the gate opened again for it and held open, as a subscription being
    # written holds it (``Gates.open``: the interest's lock, on SQLite the process's writer), so the reconcile
    # running every 0.3 s cannot close it between the opening and the event's routing
    gates = next(dep for dep in interfaces.dependencies if isinstance(dep, Gates))
    store = store_for(interfaces.database_url)
    try:
        session = store.open_session()
        try:
            gates.open(session, "member_enrolled")
            before = events_handled("interfaces", "on_member_enrolled", "not_wanted")
            payload = EVENTS.wire("member_enrolled", MemberEnrolled.sample)
            event_dispatcher(service_config(amqp_uri))("members", "member_enrolled", {
                "event_id": "8b0c6f4e-0000-4000-8000-00000000e001", "occurred_at": isoformat(utcnow()), **payload})
            wait_for(lambda: events_handled("interfaces", "on_member_enrolled", "not_wanted") == before + 1,
                     timeout=20, message="interfaces turned the unwanted event down")
        finally:
            session.rollback()  # nothing written: the interest stays unwanted
            store.close_session(session)
    finally:
        store.dispose()
    assert scalar(interfaces.database_url, "SELECT count(*) FROM kit_inbox") == 0
    wait_for(lambda: _bound(amqp_uri, ENROLLED_QUEUE) == set(), timeout=20, message="the gate closed again")
    assert receiver.requests == []


def test_a_restarted_interfaces_opens_the_gates_of_what_is_subscribed(world, amqp_uri, start_service, backend):
    from kombu import Connection

    _members, interfaces, receiver, admin = world
    _subscribe(admin, receiver.url, "member_enrolled")
    interfaces.stop()
    with Connection(amqp_uri) as connection:  # lost, say, with a broker rebuilt from definitions
        connection.default_channel.queue_unbind(queue=ENROLLED_QUEUE, exchange="members.events",
                                                routing_key="member_enrolled")
    assert _bound(amqp_uri, ENROLLED_QUEUE) == set()
    start_service(InterfacesService, backend, database_url=interfaces.database_url, **QUICK)
    wait_for(lambda: _bound(amqp_uri, ENROLLED_QUEUE), timeout=20, message="the gate opened at start")
    member_id = _member(admin)
    wait_for(lambda: _for(receiver, member_id), timeout=20, message="the delivery after the restart")


def test_a_visits_one_earn_event_reaches_partners_as_a_points_earned_a_posting(world, amqp_uri):
    """Points announce a visit's earn as one ``visit_points_earned`` (issue 17); a partner subscribed to
    ``points_earned`` receives what it always did: one delivery a posting, the posting's ``points_earned`` (its
    contract's fields, an event id of its own). A ``points_earned`` of the old shape (one queued during an upgrade,
    or any single earn) is delivered as before."""
    import uuid

    from nameko.standalone.events import event_dispatcher

    from services.kit.clock import isoformat, utcnow
    from services.points.events import EVENTS, PointsEarned, VisitPointsEarned
    from tests.harness import service_config

    _members, _interfaces, receiver, admin = world
    subscription = _subscribe(admin, receiver.url, "points_earned")
    member_id, visit_id = uuid.uuid4(), uuid.uuid4()
    dispatch = event_dispatcher(service_config(amqp_uri))
    visit = {**VisitPointsEarned.sample, "member_id": member_id, "visit_id": visit_id}
    single = {**PointsEarned.sample, "member_id": member_id, "posting_id": "2001", "rule": "activity",
              "source_ref": "talk-2026-12"}
    visit_event_id = str(uuid.uuid4())
    for event_id, contract, payload in ((visit_event_id, VisitPointsEarned, visit),
                                        (str(uuid.uuid4()), PointsEarned, single)):
        dispatch("points", contract.event_type, {"event_id": event_id, "occurred_at": isoformat(utcnow()),
                                                 **EVENTS.wire(contract.event_type, payload)})

    wait_for(lambda: len(_for(receiver, str(member_id))) == 3, timeout=20, message="a delivery a posting")
    received = _for(receiver, str(member_id))
    bodies = [json.loads(request["body"]) for request in received]
    assert {body["event_type"] for body in bodies} == {"points_earned"}
    assert all(signing.verify(subscription["secret"], r["headers"], r["body"]) for r in received)
    common = {"member_id": member_id, "source_ref": str(visit_id), "branch": visit["branch"],
              "earned_at": visit["earned_at"], "expires_on": visit["expires_on"]}
    expected = [EVENTS.wire("points_earned", {**common, **line}) for line in visit["postings"]]
    expected.append(EVENTS.wire("points_earned", single))
    assert sorted((body["data"] for body in bodies), key=lambda data: data["posting_id"]) == sorted(
        expected, key=lambda data: data["posting_id"])
    assert len({body["event_id"] for body in bodies}) == 3 and visit_event_id not in {b["event_id"] for b in bodies}


@pytest.mark.parametrize("commits", [True, False], ids=["subscription_commits", "subscription_rolls_back"])
def test_a_gate_is_never_closed_under_a_subscription_being_committed(start_service, backend, amqp_uri, commits):
    """A reconcile that finds nobody subscribed waits for the lock of a subscription being written (held from
    ``Gates.open`` to its commit), then reads again: committed, the gate stays open; rolled back, it closes.
    On PostgreSQL, the reconcile seen waiting on the lock (the two overlapped)."""
    if backend != "postgresql":
        pytest.skip("SQLite runs one transaction at a time: nothing overlaps")
    from services.interfaces.webhooks import subscriptions
    from services.kit.clock import utcnow
    from services.kit.gates import Gates
    from tests.harness import store_for

    interfaces = start_service(InterfacesService, backend, **{**QUICK, "GATE_RECONCILE_SECONDS": 3600})
    gates = next(dep for dep in interfaces.dependencies if isinstance(dep, Gates))
    store = store_for(interfaces.database_url)
    url = interfaces.database_url
    waiting = ("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
               "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")

    def reconcile() -> tuple[set[str], set[str]]:
        with store.transaction() as session:
            return gates.reconcile(session)

    try:
        session = store.open_session()
        subscriptions.create(session, {"integration": "crm-east", "event_type": "member_enrolled",
                                       "target_url": "http://127.0.0.1:9/hooks"}, ("127.0.0.1",), "test", utcnow())
        gates.open(session, "member_enrolled")
        assert _bound(amqp_uri, ENROLLED_QUEUE)
        racing = eventlet.spawn(reconcile)
        wait_for(lambda: scalar(url, waiting), timeout=20, message="the reconcile waiting for the subscription's lock")
        if commits:
            store.commit(session)
        else:
            session.rollback()
        store.close_session(session)
        opened, closed = racing.wait()
        assert ("member_enrolled" in opened, "member_enrolled" in closed) == (commits, not commits)
        assert bool(_bound(amqp_uri, ENROLLED_QUEUE)) is commits
    finally:
        store.dispose()


def test_an_imports_one_event_reaches_partners_as_a_member_enrolled_a_member(world, amqp_uri):
    """Members announce an import's batch as one ``members_imported`` (issue 19); a partner subscribed to
    ``member_enrolled`` receives what it always did: one delivery a member, the member's ``member_enrolled`` (its
    contract's fields, an event id of its own derived from the batch's). Unsubscribed, the broker drops the batch
    (its queue is bound while ``member_enrolled`` is subscribed, ``kit.gates``), as it drops ``member_enrolled``."""
    import uuid

    members, interfaces, receiver, admin = world
    rows = [{"full_name": name, "phone": phone, "birth_date": "1985-06-07", "home_branch": branch}
            for name, phone, branch in (("Wu Lei", "13800138561", "SH01"), ("Zhou Min", "13800138562", "SH02"))]

    def enrol_batch(job: str, *people: dict[str, Any]) -> list[str]:
        items = admin.members.enrol_batch({"rows": [{"key": f"import:{job}:{n}", "member": person}
                                                    for n, person in enumerate(people, start=2)]})["items"]
        return [item["member_id"] for item in items]

    queue = "evt-members-members_imported--interfaces.on_members_imported"
    assert _bound(amqp_uri, queue) == set()
    published = _published("members_imported")
    unsent = enrol_batch("job1", rows[0])
    wait_for(lambda: _published("members_imported") > published, timeout=20, message="the batch published")
    assert queued(amqp_uri, queue) == 0  # published with the broker's confirm: dropped, nobody subscribing
    subscription = _subscribe(admin, receiver.url, "member_enrolled")
    assert _bound(amqp_uri, queue) == {("members.events", "members_imported")}
    imported = enrol_batch("job2", rows[1], {**rows[1], "full_name": "Zheng Hui", "phone": "13800138563"})
    wait_for(lambda: len(receiver.requests) == 2, timeout=20, message="a delivery a member")
    bodies = [json.loads(request["body"]) for request in receiver.requests]
    assert all(signing.verify(subscription["secret"], r["headers"], r["body"]) for r in receiver.requests)
    (event_id, payload), = query(members.database_url, "SELECT event_id, payload FROM kit_outbox "
                                                       "WHERE event_type = 'members_imported' ORDER BY id DESC LIMIT 1")
    announced = json.loads(payload)["members"]
    assert [member["member_id"] for member in announced] == imported and unsent[0] not in imported
    assert {body["event_type"] for body in bodies} == {"member_enrolled"}
    by_member = {body["data"]["member_id"]: body for body in bodies}
    assert [by_member[member["member_id"]]["data"] for member in announced] == announced  # today's data, unchanged
    assert [by_member[member["member_id"]]["event_id"] for member in announced] == [
        str(uuid.uuid5(uuid.NAMESPACE_URL, f"careloop:{event_id}:{member['member_id']}")) for member in announced]
