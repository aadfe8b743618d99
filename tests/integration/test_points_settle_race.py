"""A bill's points deduction cancelled at the desk while the bill's ``visit_completed`` settles it (PostgreSQL).

Settling used to lock the redemption before the earn locked the account, while a cancellation locks the
account and then the redemption: the two deadlocked and one failed (docs/concurrency.md). Now both take the
account first. Here every pair is sent at the same moment to two points replicas; each ends one way or the
other — cancelled (the points back, the bill earns on its cash part) or settled (the cancellation refused
with a Conflict) — never an error, never both, and the ledger reconciles. The test first proves that the
pairs' transactions really waited for each other.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from nameko.standalone.events import event_dispatcher

from services.kit import Conflict
from services.kit.clock import isoformat, utcnow
from services.points.service import PointsService
from services.records.events import VisitCompleted
from tests.harness import scalar, service_config, wait_for
from tests.integration.overlap import LockWaits
from tests.integration.points_world import World, moment, wire

PAIRS = 40
GIVEN, DEDUCTED, CASH_EARNS = 20_000, 15_000, 160  # a 300 CNY bill: half in points, 150 CNY cash earns 150 + 10


def _completed(member_id: str, bill_id: str) -> dict[str, Any]:
    """records' ``visit_completed`` for a 300 CNY bill paid half in cash, half in points (built through its
    contract, as records sends it)."""
    body = wire(VisitCompleted, visit_id=uuid.uuid4(), member_id=uuid.UUID(member_id), bill_id=bill_id,
                completed_at=moment("2026-11-20T02:00:00Z"), doctor_id="d1",
                items=[{"category": "treatment", "code": "T1", "amount_minor": 300_00}],
                payments=[{"method": "cash", "amount_minor": 150_00}, {"method": "points", "amount_minor": 150_00}],
                qualifying_minor=150_00, first_visit=False, first_paid_visit=False, referral_source=None)
    return {**body, "event_id": str(uuid.uuid4()), "occurred_at": isoformat(utcnow())}


def cancel(desk: Any, redemption_id: str) -> Any:
    """The desk's cancellation, sent without waiting for its answer."""
    return desk.points.cancel_redemption.call_async(redemption_id, {"reason": "the patient paid cash after all"},
                                                    idempotency_key=f"cancel-{redemption_id}")


@pytest.mark.backends("postgresql")  # on SQLite one transaction runs at a time: nothing can overlap
@pytest.mark.timeout(300)
def test_a_deduction_cancelled_while_its_bill_settles_ends_cancelled_or_settled_never_both(start_service, rpc,
                                                                                            amqp_uri, backend):
    world = World.start(start_service, rpc, backend, amqp_uri)
    start_service(PointsService, database_url=world.url)  # a second replica: its own engine
    pairs = []
    for number in range(PAIRS):
        member = world.member()
        world.known_to_points(member)
        world.give(member, GIVEN)
        bill_id = f"B-settle-{number}-{uuid.uuid4().hex[:6]}"
        deduction = world.proxy.points.deduct_cash(member, {"bill_id": bill_id, "points": DEDUCTED, "branch": "SH01",
                                                            "bill": {"amount": 300_00, "currency": "CNY"}})
        assert deduction["state"] == "pending"
        pairs.append((member, bill_id, deduction["id"]))

    publish = event_dispatcher(service_config(amqp_uri))
    desk = rpc()
    events, replies = [], []
    with LockWaits(world.url) as waits:
        for number, (member, bill_id, redemption_id) in enumerate(pairs):  # each pair back to back, both orders
            event = _completed(member, bill_id)
            if number % 2:
                replies.append(cancel(desk, redemption_id))
                publish("records", "visit_completed", event)
            else:
                publish("records", "visit_completed", event)
                replies.append(cancel(desk, redemption_id))
            events.append(event["event_id"])
        outcomes = []
        for reply in replies:
            try:
                outcomes.append(reply.result()["state"])
            except Conflict:
                outcomes.append("refused")
        wait_for(lambda: scalar(world.url, "SELECT count(*) FROM kit_inbox WHERE event_id = ANY(:e)",
                                e=events) == PAIRS, timeout=120, interval=0.2, message="every bill settled")

    print(f"\n{PAIRS} pairs: {outcomes.count('cancelled')} cancelled first, {outcomes.count('refused')} settled "
          f"first; {waits.count()} transactions seen waiting for a lock ({waits.samples} samples)")
    assert waits.count() > 0, "no transaction ever waited for another: the pairs did not overlap"
    assert set(outcomes) <= {"cancelled", "refused"}, outcomes
    for (member, _bill_id, redemption_id), outcome in zip(pairs, outcomes, strict=True):
        (record,) = [r for r in world.proxy.points.redemptions(member)["items"] if r["id"] == redemption_id]
        if outcome == "cancelled":  # the points went back; the bill then settled nothing and earned on its cash
            assert record["state"] == "cancelled" and record["return_posting_id"], record
            assert world.balance(member) == GIVEN + CASH_EARNS
        else:  # settled first: the deduction is final
            assert record["state"] == "fulfilled", record
            assert world.balance(member) == GIVEN - DEDUCTED + CASH_EARNS
    assert world.reconciled()["ok"]
