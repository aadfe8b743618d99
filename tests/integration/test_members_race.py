"""Members' activity from events that arrive together, handled by two members replicas (PostgreSQL).

A visit's ``visit_completed`` and its refunds both write the visit's row (``refunded_minor`` is read, added
to and written back), and ``points_earned`` and the ``points_reversed`` of that posting both write the
member's points rows. Every one of these handlers locks the member's row before it reads anything
(``tier_ledger.member_for_event``), so they take turns: no refund is lost, none counted twice, whatever
the order. The test shows that they really were handled at the same moment (they waited for each other's
member row) and that every sum comes out right.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from nameko.standalone.events import event_dispatcher

from services.kit.contracts import Event
from services.members.service import MembersService
from services.points.events import PointsEarned, PointsReversed
from services.records.events import VisitCompleted, VisitRefunded
from tests.harness import query, scalar, service_config, wait_for
from tests.integration.members_world import posting_number, wire
from tests.integration.overlap import LockWaits

MEMBERS = 30
VISITS_EACH = 3
COMPLETED_AT = datetime(2026, 11, 20, 2, tzinfo=UTC)


def _event(contract: type[Event], **changes: Any) -> tuple[type[Event], dict[str, Any]]:
    return contract, wire(contract, **changes)


@pytest.mark.timeout(240)
def test_a_visit_its_refunds_and_its_points_arriving_together_are_all_counted_once(start_service, rpc, amqp_uri):
    first = start_service(MembersService, "postgresql")
    start_service(MembersService, database_url=first.database_url)  # a second replica: its own engine
    url, proxy = first.database_url, rpc()
    members = [proxy.members.enrol({"full_name": f"Race Tester{n}", "phone": f"1370013{n:04d}",
                                    "birth_date": "1990-01-01", "home_branch": "SH01"})["id"] for n in range(MEMBERS)]
    publish = event_dispatcher(service_config(amqp_uri))

    expected: dict[str, tuple[int, int, bool]] = {}  # visit -> (qualifying, refunded, full)
    points: dict[str, int] = {}  # member -> points earned less reversed
    spend: dict[str, int] = dict.fromkeys(members, 0)  # member -> what its visits count, refunds taken out
    batches = []
    for number in range(MEMBERS * VISITS_EACH):
        member_id, visit_id = members[number % MEMBERS], str(uuid.uuid4())
        paid = 100_00 + number * 1_00
        refunds = [paid // 4, paid // 3] if number % 2 else [paid]
        full = number % 2 == 0
        expected[visit_id] = (paid, sum(refunds), full)
        spend[member_id] += 0 if full else paid - sum(refunds)
        earned, reversal = posting_number(), posting_number()
        points[member_id] = points.get(member_id, 0) + paid // 100 - paid // 200
        ids = {"visit_id": uuid.UUID(visit_id), "member_id": uuid.UUID(member_id)}
        batch = [_event(VisitCompleted, **ids, kind="return", completed_at=COMPLETED_AT, qualifying_minor=paid)]
        batch += [_event(VisitRefunded, **ids, full=full, refund_id=uuid.uuid4(), refunded_minor=minor)
                  for minor in refunds]
        batch += [_event(PointsEarned, member_id=ids["member_id"], posting_id=earned, points=paid // 100, rule="spend",
                        earned_at=COMPLETED_AT),
                  _event(PointsReversed, member_id=ids["member_id"], posting_id=reversal, reverses_posting_id=earned,
                        points=paid // 200)]
        batches += batch if number % 2 == 0 else batch[::-1]  # both orders
    handled_before = scalar(url, "SELECT count(*) FROM kit_inbox")

    with LockWaits(url) as waits:
        for contract, body in batches:  # one visit's events go out back to back
            publish(contract.producer, contract.event_type, body)
        wait_for(lambda: scalar(url, "SELECT count(*) FROM kit_inbox") == handled_before + len(batches),
                 timeout=120, interval=0.2, message="both replicas to apply every event")

    waited = waits.count("transactionid", "tuple")
    print(f"\n{len(batches)} events of {len(expected)} visits: {waited} handlers waited for a member row")
    assert waited >= 10, f"only {waited} handlers waited for another: the events were not handled together"

    found = {row.visit_id: (row.qualifying_minor, row.refunded_minor, row.fully_refunded, row.completed)
             for row in query(url, "SELECT * FROM member_visits")}
    wrong = [visit_id for visit_id, (paid, refunded, full) in expected.items()
             if found.get(visit_id) != (paid, refunded, full, True)]
    assert not wrong, f"{len(wrong)} of {len(expected)} visits counted wrongly, e.g. {found.get(wrong[0])}"
    assert scalar(url, "SELECT count(*) FROM member_visit_refunds") == sum(1 + n % 2 for n in range(len(expected)))
    for member_id in members:
        lifetime = proxy.members.tier(member_id)["lifetime"]
        assert (lifetime["spend_minor"], lifetime["points_earned"]) == (spend[member_id], points[member_id])


def test_six_desks_enrolling_one_name_and_birth_date_at_once_make_one_member(start_service, rpc):
    """Name + date of birth is a duplicate without a unique index (two people may share them): before the
    enrolment's lock, desks enrolling the same person with different phones at once each found no match."""
    from datetime import date

    from services.kit.errors import Conflict
    from services.members.register import indexes_for
    from tests.integration.overlap import advisory_keys

    container = start_service(MembersService, "postgresql")
    proxy = rpc()
    rounds, made = 5, 0
    names = [f"Same Person {chr(ord('A') + round_)}" for round_ in range(rounds)]
    keys = advisory_keys(container.database_url, [
        f"members.name_birth:{indexes_for(name, None, date(1988, 8, 8), None).name_birth}" for name in names])
    with LockWaits(container.database_url) as waits:
        for round_ in range(rounds):  # a round: six enrolments in the service's queue at once
            person = {"full_name": names[round_], "birth_date": "1988-08-08", "home_branch": "SH01"}
            replies = [proxy.members.enrol.call_async({**person, "phone": f"1360013{round_}{n:03d}"})
                       for n in range(6)]
            for reply in replies:
                try:
                    reply.result()
                    made += 1
                except Conflict as conflict:
                    assert "name and date of birth" in conflict.message
    assert made == rounds, f"{made} members made of {rounds} people"
    assert waits.on(keys), "no enrolment waited for another: they did not run at the same time"


@pytest.mark.timeout(240)
def test_members_closed_while_the_night_grades_them_leave_the_segment_lists(start_service, rpc):
    """The nightly segmentation read its batch of active members, then wrote their gradings; a closure
    (or freeze, or merge) committing in between removed nothing (no grading yet) and the batch then wrote
    one: a closed member left in the lists for good. Now the batch reads its members ``FOR SHARE``."""
    from services.kit.caller import Identity

    container = start_service(MembersService, "postgresql", SEGMENT_BATCH=10, NIGHTLY_AT="off")
    url, proxy = container.database_url, rpc()
    admin = rpc(caller=Identity(kind="staff", subject="admin-1", role="group_admin", branches=("*",))).members
    members = [proxy.members.enrol({"full_name": f"Night Tester{n}", "phone": f"1350013{n:04d}",
                                    "birth_date": "1990-01-01", "home_branch": "SH01"})["id"] for n in range(200)]
    closing = members[1::2]
    with LockWaits(url) as waits:
        night = admin.run_nightly.call_async()
        closures = [proxy.members.close_member.call_async(member_id, {"reason": "member_request"})
                    for member_id in closing]
        for reply in closures:
            reply.result()
        assert night.result()["jobs"]["segments"]["finished"]
    waited = waits.count("transactionid", "tuple")
    left = scalar(url, "SELECT count(*) FROM member_segments s JOIN members m ON m.id = s.member_id "
                       "WHERE m.status <> 'active'")
    print(f"\n{len(closing)} closures during the night's segmentation: {waited} waited for a batch; "
          f"{left} closed members left in the lists")
    assert left == 0, f"{left} closed members are still in the segment lists"
    assert scalar(url, "SELECT count(*) FROM member_segments") == len(members) - len(closing)
    assert waited > 0, "no closure ever waited for the night: they did not run at the same time"
