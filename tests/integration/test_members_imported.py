"""An import's members announced in one ``members_imported`` (issue 19) leave in each consumer exactly what a
``member_enrolled`` a member leaves: the same rows enrolled both ways (two sets of member ids, one event a member
for the first, one event for the second), then every consumer's rows of the two sets compared, the ids, the
random run and delivery ids and the handling moments aside. One member of each set was known before its
enrolment came (points' copy from an opening balance's prefetch, records' patient from a visit, notifications'
audience from a status change): the conflict paths are compared too."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from nameko.standalone.events import event_dispatcher
from sqlalchemy import insert

from services.kit.clock import isoformat, utcnow
from services.members.events import EVENTS as MEMBERS_EVENTS
from services.notifications.models import AudienceMember
from services.notifications.service import NotificationsService
from services.points.models import MemberCopy
from services.points.service import PointsService
from services.records.models import Patient
from services.records.service import RecordsService
from tests.harness import query, scalar, service_config, store_for, wait_for

ROWS = [("SH01", False, "zh-Hans"), ("SH02", True, "en"), ("SH01", True, "es"), ("SH02", False, "zh-Hant")]
"""(home branch, referred by the referrer, language) of each row; the last one was known before it enrolled."""
CONSUMERS = ("points", "records", "notifications")


@pytest.fixture
def consumers(start_service, backend, amqp_uri):
    started = {service.name: start_service(service, backend) for service in (PointsService, RecordsService)}
    # the scheduler off: a welcome due now would be sent (its row changed) while the test waits for the other way
    started["notifications"] = start_service(NotificationsService, backend, NOTIFICATIONS={"scheduler": False})
    return started, event_dispatcher(service_config(amqp_uri))


def _enrolment(member_id: uuid.UUID, branch: str, referrer: uuid.UUID | None, language: str, at: Any) -> dict:
    return {"member_id": member_id, "home_branch": branch, "referrer_id": referrer, "preferred_language": language,
            "source": "import", "enrolled_at": at}


def _envelope(occurred_at: Any) -> dict[str, str]:
    return {"event_id": str(uuid.uuid4()), "occurred_at": isoformat(occurred_at)}


def _handled(url: str, consumer: str) -> int:
    return scalar(url, "SELECT count(*) FROM kit_inbox WHERE consumer = :c", c=consumer)


def _add(url: str, model: type, **values: Any) -> None:
    store = store_for(url)
    try:
        with store.transaction() as session:
            session.execute(insert(model).values(**values))
    finally:
        store.dispose()


def _known_before(started: dict, member_id: uuid.UUID, referrer: uuid.UUID, now: Any) -> None:
    """What each consumer may hold of a member before its enrolment comes (the paths on conflict)."""
    _add(started["points"].database_url, MemberCopy, member_id=member_id, home_branch="XX01", referrer_id=referrer,
         tier="standard", status="active", updated_at=now)
    _add(started["records"].database_url, Patient, member_id=member_id, home_branch="XX01", completed_visits=0,
         paid_visits=0, membership_status="active", created_at=now)
    _add(started["notifications"].database_url, AudienceMember, member_id=member_id, home_branch="XX01",
         status="frozen", updated_at=now)


TABLES = {
    "points": [
        ("points_members", "SELECT member_id, home_branch, referrer_id, tier, tier_as_of, segment, status, "
                           "status_as_of, enrolled_at, merged_into_id FROM points_members WHERE member_id IN ({ids})"),
        ("points_accounts", "SELECT member_id, balance, earned_total, pending FROM points_accounts "
                            "WHERE member_id IN ({ids})"),
        ("referral postings", "SELECT member_id, kind, rule, points, dedupe_key, source, source_ref, branch, reason, "
                              "expires_on FROM points_postings WHERE source_ref IN ({refs})"),
        ("referral lots", "SELECT l.member_id, l.kind, l.points, l.remaining, l.expires_on FROM points_lots l "
                          "JOIN points_postings p ON p.id = l.posting_id WHERE p.source_ref IN ({refs})"),
    ],
    "records": [
        ("patients", "SELECT member_id, home_branch, referrer_id, enrolled_at, enrolled_on, first_arrived_at, "
                     "completed_visits, paid_visits, membership_status FROM patients WHERE member_id IN ({ids})"),
    ],
    "notifications": [
        ("audience", "SELECT member_id, home_branch, status FROM audience WHERE member_id IN ({ids})"),
        ("trigger facts", "SELECT event, member_id, cause, branch, facts FROM journey_trigger_facts "
                          "WHERE member_id IN ({ids})"),
        ("runs", "SELECT journey_id, version, member_id, cause, branch, context, step, state FROM journey_runs "
                 "WHERE member_id IN ({ids})"),
        ("deliveries", "SELECT d.member_id, d.journey, d.channel, d.requested_channel, d.state, d.reason, "
                       "d.expires_at, d.attempts, d.category, d.context, r.cause, "
                       "d.due_at = r.started_at AS due_as_started, d.first_due_at = d.due_at AS first_due "
                       "FROM deliveries d JOIN journey_runs r ON r.member_id = d.member_id "  # one run a member here
                       "WHERE d.member_id IN ({ids})"),
        ("delivery steps", "SELECT d.member_id, s.state, s.channel, s.provider_id FROM delivery_steps s "
                           "JOIN deliveries d ON d.id = s.delivery_id WHERE d.member_id IN ({ids})"),
    ],
}


def _kept(url: str, sql: str, ids: list[uuid.UUID]) -> list[tuple]:
    """The rows of the members ``ids``, each member's id (wherever it appears, in JSON too) as its row number."""
    stored = (lambda member_id: member_id.hex) if url.startswith("sqlite") else str  # how a Uuid column keeps it
    listed = ", ".join(f"'{stored(member_id)}'" for member_id in ids)
    refs = ", ".join(f"'{member_id}'" for member_id in ids)
    names = {str(member_id): f"<row {n}>" for n, member_id in enumerate(ids)}
    names.update({str(member_id).replace("-", ""): f"<row {n}>" for n, member_id in enumerate(ids)})

    def named(value: Any) -> Any:
        if isinstance(value, uuid.UUID | str):
            value = str(value)
            for member_id, name in names.items():
                value = value.replace(member_id, name)
        return value

    return sorted((tuple(named(value) for value in row) for row in query(url, sql.format(ids=listed, refs=refs))),
                  key=repr)


def test_an_import_announced_in_one_event_leaves_what_one_event_a_member_leaves(consumers):
    started, dispatch = consumers
    now = utcnow()
    at = now - timedelta(minutes=5)  # one enrolment moment and one announcement moment for both ways
    referrer = uuid.uuid4()
    dispatch("members", "member_enrolled", {**MEMBERS_EVENTS.wire("member_enrolled", _enrolment(
        referrer, "SH01", None, "en", at - timedelta(days=30))), **_envelope(at - timedelta(days=30))})
    for name, service in started.items():
        wait_for(lambda url=service.database_url, name=name: _handled(url, f"{name}.on_member_enrolled") == 1,
                 timeout=20, message=f"{name} to take the referrer's enrolment")

    one_by_one, together = [uuid.uuid4() for _ in ROWS], [uuid.uuid4() for _ in ROWS]
    _known_before(started, one_by_one[-1], referrer, now)
    _known_before(started, together[-1], referrer, now)

    def enrolments(ids: list[uuid.UUID]) -> list[dict]:
        return [_enrolment(member_id, branch, referrer if referred else None, language, at)
                for member_id, (branch, referred, language) in zip(ids, ROWS, strict=True)]

    for enrolment in enrolments(one_by_one):
        dispatch("members", "member_enrolled", {**MEMBERS_EVENTS.wire("member_enrolled", enrolment), **_envelope(at)})
    dispatch("members", "members_imported", {**MEMBERS_EVENTS.wire("members_imported", {
        "members": enrolments(together)}), **_envelope(at)})
    for name, service in started.items():
        url = service.database_url
        wait_for(lambda url=url, name=name: (_handled(url, f"{name}.on_member_enrolled"),
                                             _handled(url, f"{name}.on_members_imported")) == (1 + len(ROWS), 1),
                 timeout=30, message=f"{name} to take both ways' enrolments")

    for name in CONSUMERS:
        url = started[name].database_url
        for table, sql in TABLES[name]:
            alone, batched = _kept(url, sql, one_by_one), _kept(url, sql, together)
            assert alone, f"{name}: no {table} kept: the comparison would prove nothing"
            assert batched == alone, f"{name}'s {table} differ"

    # what the comparison covers: two bonuses a way (the third row's referrer came from points' own copy),
    # a patient's enrolment given to the one known before, a welcome a member
    points = started["points"].database_url
    assert scalar(points, "SELECT count(*) FROM points_postings WHERE rule = 'referral'") == 6
    assert scalar(points, "SELECT sum(balance) FROM points_accounts") == 6 * 200  # the referrer's
    records = started["records"].database_url
    assert scalar(records, "SELECT count(*) FROM patients WHERE enrolled_at IS NOT NULL") == 1 + 2 * len(ROWS)
    welcomes = query(started["notifications"].database_url, "SELECT context FROM deliveries WHERE journey = 'welcome'")
    assert len(welcomes) == 1 + 2 * len(ROWS) and all(json.loads(context)["cause"].startswith("member:")
                                                       for context, in welcomes)


@pytest.mark.backends("postgresql")
def test_a_batch_handled_again_changes_nothing(consumers):
    """A redelivered batch is dropped by each consumer's inbox; the same members in a new batch (an import's
    event and the member's own in flight together during an upgrade) pay no second bonus and start no second
    welcome."""
    started, dispatch = consumers
    at = utcnow()
    referrer, members = uuid.uuid4(), [uuid.uuid4(), uuid.uuid4()]
    dispatch("members", "member_enrolled", {**MEMBERS_EVENTS.wire("member_enrolled", _enrolment(
        referrer, "SH01", None, "en", at)), **_envelope(at)})
    batch = MEMBERS_EVENTS.wire("members_imported", {"members": [
        _enrolment(member_id, "SH01", referrer, "en", at) for member_id in members]})
    envelope = _envelope(at)
    for sent in (envelope, envelope, _envelope(at)):  # the same event twice, then the same members anew
        dispatch("members", "members_imported", {**batch, **sent})
    for name, service in started.items():
        wait_for(lambda url=service.database_url, name=name: _handled(url, f"{name}.on_members_imported") == 2,
                 timeout=20, message=f"{name} to take both batches")
    points = started["points"].database_url
    assert scalar(points, "SELECT sum(balance) FROM points_accounts") == 2 * 200  # the referrer's
    assert scalar(points, "SELECT count(*) FROM points_accounts") == 3
    assert scalar(started["records"].database_url, "SELECT count(*) FROM patients") == 3
    notifications = started["notifications"].database_url
    assert scalar(notifications, "SELECT count(*) FROM deliveries WHERE journey = 'welcome'") == 3
    assert scalar(notifications, "SELECT count(*) FROM journey_runs") == 3
