"""After a fault: drain, then check that nothing acknowledged was lost and nothing happened twice.

Read straight from each service's database on the private cluster (not through the proxies) and from the
broker, after ``drain`` saw every queue and every outbox empty. ``check`` returns a ``Verdict``: the lost
and duplicated effects of the operations it was given (one scenario's), and the problems of the whole
state (which hold across every scenario so far: the ledgers, the dead letters, the processes).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import requests

from tests.faults.load import Op
from tests.faults.stack import SERVICES

DEAD = "careloop.dead."
REPLIES = "rpc.reply-"
"""Reply queues are not work: one of a killed process keeps the replies that came too late for it until
the queue expires (nameko's reply-queue TTL, 5 minutes); the restarted process has a queue of its own."""


@dataclass
class Verdict:
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # worth knowing, not a broken invariant

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.problems)


def unsent(stack: Any) -> dict[str, int]:
    return {service: stack.sql(service, "SELECT count(*) FROM kit_outbox WHERE sent_at IS NULL")[0][0]
            for service in SERVICES}


def drain(stack: Any, seconds: float = 120) -> float:
    """Wait until every queue but the dead-letter and reply ones is empty and every outbox is sent, twice in a row
    (a retry waiting in a delay queue counts as work); seconds it took."""
    started = time.monotonic()
    calm = 0
    last: Any = None
    while calm < 2:
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not drained in {seconds:.0f} s: {last}")
        try:
            busy = {name: depth for name, depth in stack.queue_depths().items()
                    if depth and not name.startswith((DEAD, REPLIES))}
            outboxes = {name: count for name, count in unsent(stack).items() if count}
        except Exception as error:  # noqa: BLE001 - the broker or the database is still coming back
            busy, outboxes = {"(unreadable)": str(error)[:200]}, {}
        last = (busy, outboxes)
        calm = calm + 1 if not busy and not outboxes else 0
        time.sleep(0.5)
    return time.monotonic() - started


def _rows(stack: Any, service: str, sql: str) -> list[tuple]:
    return stack.sql(service, sql)


def check(stack: Any, ops: list[Op], all_ops: list[Op], dead_expected: dict[str, int]) -> Verdict:
    """Effects of ``ops`` (lost, duplicated) and the invariants of the whole state."""
    verdict = Verdict()
    for op in ops:  # a dependency that failed is a 503 to retry (issue 17); a 500 is a bug whatever the fault
        if op.status >= 500 and op.status != 503:
            verdict.problems.append(f"{op.kind} {op.key}: answered {op.status}, not 503: {op.data.get('answer')}")
    _bills_and_refunds(stack, ops, verdict)
    _members(stack, ops, verdict)
    _points_and_wallet(stack, ops, all_ops, verdict)
    _appointments(stack, ops, verdict)
    _cross_service(stack, verdict)
    _reconciliation(stack, verdict)
    _notifications(stack, verdict)
    for service, count in unsent(stack).items():
        if count:
            verdict.problems.append(f"{service}: {count} events unsent in its outbox")
    dead = {name[len(DEAD):]: depth for name, depth in stack.queue_depths().items() if name.startswith(DEAD)}
    for service in set(dead) | set(dead_expected):
        if dead.get(service, 0) != dead_expected.get(service, 0):
            verdict.problems.append(f"dead letters of {service}: {dead.get(service, 0)}, expected "
                                    f"{dead_expected.get(service, 0)}")
    for name in stack.dead():
        verdict.problems.append(f"process {name} is not running")
    return verdict


def _bills_and_refunds(stack: Any, ops: list[Op], verdict: Verdict) -> None:
    visits = {bill: str(visit) for bill, visit in _rows(stack, "records",
                                                         "SELECT bill_id, id FROM visits WHERE bill_id IS NOT NULL")}
    earned = Counter()  # (visit, rule) -> postings
    net = Counter()  # visit -> points earned minus reversed
    for ref, rule, kind, count, points in _rows(stack, "points", """
            SELECT source_ref, coalesce(rule, ''), kind, count(*), sum(points) FROM points_postings
            WHERE source = 'visit' GROUP BY 1, 2, 3"""):
        net[ref] += points
        if kind == "earn":
            earned[(ref, rule)] += count
    for earn_id, count, points, reversals in _rows(stack, "points", """
            SELECT e.id, e.points, coalesce(sum(r.points), 0), count(r.id) FROM points_postings e
            LEFT JOIN points_postings r ON r.reverses_id = e.id
            WHERE e.source = 'visit' AND e.kind = 'earn' GROUP BY e.id, e.points"""):
        if -points > count or reversals > 1:  # every refund here is a full one: at most one reversal
            verdict.duplicated.append(f"earn posting {earn_id} reversed {reversals} times ({points} of {count})")
    for (ref, rule), count in earned.items():
        if count > 1:
            verdict.duplicated.append(f"visit {ref} earned {count} times by rule {rule}")
    earned_visits = {ref for ref, _rule in earned}
    for op in ops:
        visit = visits.get(op.data.get("bill_id"))
        if op.kind == "bill" and op.acked:
            if visit is None:
                verdict.lost.append(f"bill {op.key}: acknowledged, no visit in records")
            elif visit not in earned_visits:
                verdict.lost.append(f"bill {op.key}: acknowledged, visit {visit} earned nothing")
        if op.kind == "refund" and op.acked and visit is not None and net[visit] != 0:
            where = verdict.lost if net[visit] > 0 else verdict.duplicated
            where.append(f"refund {op.key}: acknowledged, visit {visit} keeps {net[visit]} points")


def _members(stack: Any, ops: list[Op], verdict: Verdict) -> None:
    known = {str(row[0]) for row in _rows(stack, "members", "SELECT id FROM members")}
    for op in ops:
        if op.kind == "enrol" and op.acked and op.data["member_id"] not in known:
            verdict.lost.append(f"enrolment {op.key}: acknowledged, member {op.data['member_id']} missing")


def _points_and_wallet(stack: Any, ops: list[Op], all_ops: list[Op], verdict: Verdict) -> None:
    redeemed = Counter({str(rid): count for rid, count in _rows(stack, "points", """
        SELECT redemption_id, count(*) FROM points_postings WHERE kind = 'redeem' AND redemption_id IS NOT NULL
        GROUP BY 1""")})
    for rid, count in redeemed.items():
        if count > 1:
            verdict.duplicated.append(f"redemption {rid} posted {count} times")
    postings = {str(pid): (str(member), kind) for pid, member, kind in _rows(
        stack, "points", "SELECT id, member_id, kind FROM wallet_postings")}
    top_ups = Counter(member for member, kind in postings.values() if kind == "top_up")
    tried = Counter(op.data["member_id"] for op in all_ops if op.kind == "top_up")
    payments = Counter(bill for (bill,) in _rows(stack, "points",
                                                 "SELECT bill_id FROM wallet_postings WHERE kind = 'payment'"))
    for op in ops:
        if not op.acked:
            continue
        if op.kind == "redeem" and redeemed[op.data["redemption_id"]] == 0:
            verdict.lost.append(f"redemption {op.key}: acknowledged, no redeem posting")
        if op.kind == "top_up" and op.data["posting_id"] not in postings:
            verdict.lost.append(f"top-up {op.key}: acknowledged, posting {op.data['posting_id']} missing")
        if op.kind == "pay" and payments[op.data["bill_id"]] == 0:
            verdict.lost.append(f"wallet payment {op.key}: acknowledged, no posting")
    for member, count in top_ups.items():
        if count > tried[member]:
            verdict.duplicated.append(f"member {member}: {count} top-ups from {tried[member]} requests")
    for bill, count in payments.items():
        if count > 1:
            verdict.duplicated.append(f"wallet payment for {bill} posted {count} times")
    negative = _rows(stack, "points", "SELECT count(*) FROM wallet_accounts WHERE principal_minor < 0 "
                                      "OR bonus_minor < 0")[0][0]
    if negative:
        verdict.problems.append(f"{negative} stored-value accounts below zero")


def _appointments(stack: Any, ops: list[Op], verdict: Verdict) -> None:
    rows = _rows(stack, "records", "SELECT id, slot_id, status, member_id FROM appointments")
    status = {str(aid): state for aid, _slot, state, _member in rows}
    holder = {str(slot): str(member) for _aid, slot, _state, member in rows}
    for slot, count in Counter(str(slot) for _aid, slot, _state, _member in rows).items():
        if count > 1:
            verdict.duplicated.append(f"slot {slot} booked {count} times")
    for op in ops:
        if op.kind == "book" and not op.acked and holder.get(op.data["slot_id"]) == op.data["member_id"]:
            verdict.notes.append(f"booking {op.key}: answered {op.status} after {op.attempts} attempts, yet the "
                                 "slot is booked for this very member (a retry of a booking whose answer was lost)")
        if op.kind == "book" and op.acked and op.data["appointment_id"] not in status:
            verdict.lost.append(f"booking {op.key}: acknowledged, appointment missing")
        if op.kind == "cancel" and op.acked and status.get(op.data["appointment_id"]) != "cancelled":
            verdict.lost.append(f"cancel {op.key}: acknowledged, appointment is "
                                f"{status.get(op.data['appointment_id'])}")


def _cross_service(stack: Any, verdict: Verdict) -> None:
    """Records' completed and refunded visits against points' postings and members' spend: the visit audit
    run now through the gateway (as an operator would), and the gist of it again in SQL (a second opinion
    that does not depend on the audit's own code)."""
    response = requests.post(stack.gateway_urls[0] + "/v1/ops/audit/visits", json={}, timeout=300,
                             headers={"Authorization": f"Bearer {stack.api_key}",
                                      "Idempotency-Key": f"fault-audit-{uuid.uuid4()}"})
    if response.status_code != 200:
        verdict.problems.append(f"visit audit answered {response.status_code}: {response.text[:200]}")
    elif response.json()["state"] != "finished" or response.json()["mismatches"]:
        verdict.problems.append(f"visit audit: {str(response.json())[:400]}")
    net = {ref: points for ref, points in _rows(stack, "points", """
        SELECT source_ref, sum(points) FROM points_postings WHERE source = 'visit' GROUP BY 1""")}
    for visit, paid, refunded in _rows(stack, "records", """
            SELECT id, qualifying_minor, refunded_qualifying_minor FROM visits
            WHERE status = 'completed' AND bill_id IS NOT NULL"""):
        points = net.get(str(visit))
        if paid > 0 and refunded == 0 and not points:
            verdict.problems.append(f"audit: visit {visit} completed and paid, points earned nothing")
        if paid > 0 and refunded >= paid and points:
            verdict.problems.append(f"audit: visit {visit} refunded in full, points keeps {points}")


def _reconciliation(stack: Any, verdict: Verdict) -> None:
    """The points reconciliation RPC (through the gateway): balance = postings = open lots, every account."""
    cursor = None
    while True:
        params = {"limit": 10_000, **({"cursor": cursor} if cursor else {})}
        response = requests.get(stack.gateway_urls[0] + "/v1/points/reconciliation", params=params, timeout=60,
                                headers={"Authorization": f"Bearer {stack.api_key}"})
        if response.status_code != 200:
            verdict.problems.append(f"reconciliation answered {response.status_code}: {response.text[:200]}")
            return
        report = response.json()
        if not report.get("ok"):
            verdict.problems.append(f"reconciliation: {str(report)[:400]}")
        cursor = report.get("next_cursor")
        if not cursor:
            return


def _notifications(stack: Any, verdict: Verdict) -> None:
    for delivery, count in _rows(stack, "notifications", """
            SELECT delivery_id, count(*) FROM delivery_steps WHERE state = 'sent' GROUP BY 1 HAVING count(*) > 1"""):
        verdict.duplicated.append(f"delivery {delivery} sent {count} times")
    for member, journey, count in _rows(stack, "notifications", """
            SELECT member_id, journey, count(*) FROM deliveries WHERE journey = 'welcome' GROUP BY 1, 2
            HAVING count(*) > 1"""):
        verdict.duplicated.append(f"member {member}: {count} {journey} messages")
    for delivery, count in _rows(stack, "notifications", """
            SELECT delivery_id, count(*) FROM inbox_messages GROUP BY 1 HAVING count(*) > 1"""):
        verdict.duplicated.append(f"delivery {delivery} in the inbox {count} times")
