"""A merge and the events about the duplicate handled at the same moment, by two points replicas (PostgreSQL).

Before the fix, an event naming the duplicate resolved "not merged" before the merge committed, then waited
for the duplicate's account (locked by the merge) and credited it after the merge had emptied it: points
on an account nobody can see any more (every read of the duplicate's id shows the survivor). A refund of
the duplicate's earlier visit took its points back from the emptied duplicate, as debt, while the
survivor kept them. The same for stored value: a top-up or a card refund naming the duplicate landed on
its emptied card. Here each of 60 duplicates has ``member_merged`` published together with a new visit's
``visit_completed`` and the full refund of an earlier visit, while a desk tops up the duplicate's card and
refunds one of its card payments; afterwards every duplicate's own account and card are empty and every
point and every yuan is on its survivor.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

import pytest
from nameko.standalone.events import event_dispatcher

from services.kit.clock import isoformat, utcnow
from services.members.events import MemberMerged
from services.points.service import PointsService
from tests.harness import query, scalar, service_config, wait_for
from tests.integration.overlap import LockWaits, advisory_keys, overlapping
from tests.integration.points_world import wire
from tests.integration.test_points_visit_race import _completed, _enrolled, _refunded

PAIRS = 60
PAID = 120_00  # earns 120 (spend) + 10 (visit) points


def cny(amount: int) -> dict[str, Any]:
    return {"amount": amount, "currency": "CNY"}


def _event(payload: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "occurred_at": isoformat(utcnow()), **payload}


@pytest.mark.timeout(300)
def test_events_about_a_duplicate_handled_with_its_merge_end_on_the_survivor(start_service, amqp_uri, rpc):
    first = start_service(PointsService, "postgresql")
    start_service(PointsService, database_url=first.database_url)
    url = first.database_url
    publish = event_dispatcher(service_config(amqp_uri))
    inbox = "SELECT count(*) FROM kit_inbox"

    pairs = [(str(uuid.uuid4()), str(uuid.uuid4())) for _ in range(PAIRS)]  # (survivor, duplicate)
    early = {duplicate: str(uuid.uuid4()) for _survivor, duplicate in pairs}
    for survivor, duplicate in pairs:
        publish("members", "member_enrolled", _event(_enrolled(survivor)))
        publish("members", "member_enrolled", _event(_enrolled(duplicate)))
    for duplicate, visit_id in early.items():
        publish("records", "visit_completed", _event(_completed(visit_id, duplicate, PAID)))
    wait_for(lambda: scalar(url, inbox) == 3 * PAIRS, timeout=60, message="points to apply the set-up")
    proxy = rpc()
    payments = {}
    for _survivor, duplicate in pairs:  # 200 on the duplicate's card, 50 of it paid for a bill
        proxy.points.top_up(duplicate, {"amount": cny(200_00), "branch": "SH01"}, idempotency_key=f"t-{duplicate}")
        payments[duplicate] = proxy.points.pay(duplicate, {"amount": cny(50_00), "branch": "SH01",
                                                           "bill_id": f"B-{duplicate}"},
                                               idempotency_key=f"p-{duplicate}")["id"]

    merges, later, events = {}, {}, []
    for number, (survivor, duplicate) in enumerate(pairs):
        merges[duplicate], later[duplicate] = str(uuid.uuid4()), str(uuid.uuid4())
        batch = [
            ("members", "member_merged", wire(MemberMerged, survivor_id=uuid.UUID(survivor),
                                              merged_id=uuid.UUID(duplicate), merge_id=uuid.UUID(merges[duplicate]))),
            ("records", "visit_completed", _completed(later[duplicate], duplicate, PAID)),
            ("records", "visit_refunded", _refunded(early[duplicate], duplicate, str(uuid.uuid4()), PAID, True)),
        ]
        events += batch if number % 2 == 0 else batch[::-1]  # both orders
    keys = advisory_keys(url, [f"points.member:{duplicate}" for _survivor, duplicate in pairs])
    with LockWaits(url) as waits:
        replies = []
        for number, (source, event_type, payload) in enumerate(events):  # a duplicate's events back to back
            payload.update(_event({}))
            publish(source, event_type, payload)
            if number % 3 == 2:  # and the desk at the same moment: a top-up and a card refund
                duplicate = pairs[number // 3][1]
                replies.append(proxy.points.top_up.call_async(duplicate, {"amount": cny(100_00), "branch": "SH01"},
                                                              idempotency_key=f"t2-{duplicate}"))
                replies.append(proxy.points.refund_payment.call_async(
                    payments[duplicate], {"amount": cny(50_00), "reason": "bill cancelled"},
                    idempotency_key=f"r-{duplicate}"))
        for reply in replies:
            reply.result()
        wait_for(lambda: scalar(url, inbox) == 3 * PAIRS + len(events), timeout=120, interval=0.2,
                 message="both replicas to apply every event")
        wait_for(lambda: scalar(url, "SELECT count(*) FROM kit_outbox WHERE sent_at IS NULL") == 0, timeout=60,
                 message="the outbox to drain")

    # the merge and the events about its duplicate really ran at the same time
    ended = dict(query(url, "SELECT event_id, handled_at FROM kit_inbox"))
    merged_span: dict[str, tuple[Any, Any]] = {}
    spans: dict[str, list[tuple[Any, Any]]] = defaultdict(list)
    event_of = {payload.get("merge_id") or payload.get("refund_id") or payload["visit_id"]: payload["event_id"]
                for _source, _type, payload in events}
    for merge_id, merged_id, at in query(url, "SELECT merge_id, merged_id, merged_at FROM points_merges"):
        merged_span[str(merged_id)] = (at, ended[event_of[str(merge_id)]])
    for visit_id, at in query(url, "SELECT source_ref, min(created_at) FROM points_postings WHERE kind = 'earn' "
                                   "AND source = 'visit' GROUP BY source_ref"):
        duplicate = next((d for d, v in later.items() if v == visit_id), None)
        if duplicate is not None:
            spans[duplicate].append((at, ended[event_of[visit_id]]))
    for refund_id, visit_id, at in query(url, "SELECT refund_id, visit_id, created_at FROM points_visit_refunds"):
        duplicate = next(d for d, v in early.items() if v == visit_id)
        spans[duplicate].append((at, ended[event_of[refund_id]]))
    together = sum(1 for duplicate, span in merged_span.items()
                   if any(overlapping(span, other) for other in spans[duplicate]))
    held = waits.on(keys)
    print(f"\n{PAIRS} merges: {together} ran at the same time as an event about their duplicate; "
          f"{len(held)} duplicates' aliases were waited for")
    assert len(merged_span) == PAIRS and together >= PAIRS // 10, f"only {together} merges overlapped their events"

    # every duplicate's own account is empty; its points, the new visit's and the refund's reversal are the
    # survivor's
    balances = {str(m): (b, open_) for m, b, open_ in query(
        url, "SELECT a.member_id, a.balance, (SELECT count(*) FROM points_lots l WHERE l.member_id = a.member_id "
             "AND l.remaining <> 0) FROM points_accounts a")}
    stranded = [d for _s, d in pairs if balances[d] != (0, 0)]
    wrong = [s for s, _d in pairs if balances[s][0] != 130]
    assert not stranded and not wrong, (f"{len(stranded)} of {PAIRS} duplicates kept points or debt after their "
                                        f"merge; {len(wrong)} survivors hold the wrong balance")
    cards = {str(m): p + b for m, p, b in query(url, "SELECT member_id, principal_minor, bonus_minor "
                                                      "FROM wallet_accounts")}
    kept = [d for _s, d in pairs if cards.get(d, 0) != 0]
    short = [s for s, _d in pairs if cards.get(s, 0) != 300_00]  # 200 - 50 moved, then 100 and 50 more
    assert not kept and not short, (f"{len(kept)} of {PAIRS} duplicates' cards kept money after their merge; "
                                    f"{len(short)} survivors' cards hold the wrong amount")
    assert scalar(url, "SELECT count(*) FROM points_postings WHERE kind = 'reverse'") == 2 * PAIRS
    report = rpc().points.reconcile(limit=10_000)
    assert report["ok"] and report["checked"] == 2 * PAIRS, report
    assert held, "no event ever waited for a merge (or a merge for an event)"
