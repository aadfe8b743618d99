"""A referrer merged into another member while a person they referred enrols, by two points replicas (PostgreSQL).

``member_enrolled`` pays the referrer's bonus; ``member_merged`` moves the referrer's points to the survivor
and empties the referrer's account. Handled at the same moment, the bonus must end on the survivor whichever
commits first — never on the emptied account of a member nobody can see any more — and neither handler may
deadlock the other (the referrer's alias is held before the new member's rows are locked: docs/concurrency.md).
Each pair is published back to back, in both orders; the test first proves that the handlers waited for each
other on the referrer's lock.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from nameko.standalone.events import event_dispatcher

from services.kit.clock import isoformat, utcnow
from services.points.rules.programme import Programme
from services.points.service import PointsService
from tests.harness import query, scalar, service_config, wait_for
from tests.integration.overlap import LockWaits, advisory_keys
from tests.integration.test_points_visit_race import _enrolled

PAIRS = 60
BONUS = Programme().referral_enrolment_points


def _event(payload: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "occurred_at": isoformat(utcnow()), **payload}


@pytest.mark.backends("postgresql")  # on SQLite one transaction runs at a time: nothing can overlap
@pytest.mark.timeout(300)
def test_a_referral_bonus_paid_while_its_referrer_is_merged_ends_on_the_survivor(start_service, amqp_uri, rpc,
                                                                                 backend):
    first = start_service(PointsService, backend)
    start_service(PointsService, database_url=first.database_url)  # a second replica: its own engine
    url = first.database_url
    publish = event_dispatcher(service_config(amqp_uri))
    inbox = "SELECT count(*) FROM kit_inbox"

    pairs = [(str(uuid.uuid4()), str(uuid.uuid4())) for _ in range(PAIRS)]  # (survivor, referrer)
    for survivor, referrer in pairs:
        publish("members", "member_enrolled", _event(_enrolled(survivor)))
        publish("members", "member_enrolled", _event(_enrolled(referrer)))
    wait_for(lambda: scalar(url, inbox) == 2 * PAIRS, timeout=60, message="points to know every member")

    events = []
    for number, (survivor, referrer) in enumerate(pairs):
        pair = [("member_merged", {"survivor_id": survivor, "merged_id": referrer, "merge_id": str(uuid.uuid4())}),
                ("member_enrolled", {**_enrolled(str(uuid.uuid4())), "referrer_id": referrer})]
        events += pair if number % 2 == 0 else pair[::-1]  # both orders
    keys = advisory_keys(url, [f"points.member:{referrer}" for _survivor, referrer in pairs])
    with LockWaits(url) as waits:
        for event_type, payload in events:  # a pair's events back to back: "at the same moment"
            publish("members", event_type, _event(payload))
        wait_for(lambda: scalar(url, inbox) == 2 * PAIRS + len(events), timeout=120, interval=0.2,
                 message="both replicas to apply every event")
        wait_for(lambda: scalar(url, "SELECT count(*) FROM kit_outbox WHERE sent_at IS NULL") == 0, timeout=60,
                 message="the outbox to drain")

    held = waits.on(keys)
    print(f"\n{PAIRS} referrers merged as their referral enrolled: {len(held)} referrers' locks waited for")
    balances = {str(m): (b, open_) for m, b, open_ in query(
        url, "SELECT a.member_id, a.balance, (SELECT count(*) FROM points_lots l WHERE l.member_id = a.member_id "
             "AND l.remaining <> 0) FROM points_accounts a")}
    stranded = [r for _s, r in pairs if balances.get(r, (0, 0)) != (0, 0)]
    missing = [s for s, _r in pairs if balances[s][0] != BONUS]
    assert not stranded and not missing, (f"{len(stranded)} of {PAIRS} merged referrers kept a bonus; "
                                          f"{len(missing)} survivors lack theirs")
    report = rpc().points.reconcile(limit=10_000)
    assert report["ok"], report
    assert held, "no enrolment ever waited for a merge of its referrer (or the other way round)"
