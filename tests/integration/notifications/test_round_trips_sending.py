"""Database round trips of the delivery send path on PostgreSQL (how they are counted:
``tests/integration/test_round_trips.py``): each transaction that names the delivery, from its claim for
sending to the record of the provider's answer and the ``notification_sent`` event."""

from __future__ import annotations

import pytest

from tests.integration.notifications.test_sending import LI, NOW, results_ready
from tests.integration.test_round_trips import Trips

SEND_CEILINGS = [3, 4, 3]
"""Round trips of each transaction naming the delivery: [3, 4, 4] when the kit's command path landed; the record of
the send 3 since a delivery's steps go with the commit (issue 17, notifications' cut)."""


def sent_with_trips(suite, channel: str, outcome: str, ceilings: list[int]) -> list[list[str]]:
    """Send one delivery by ``channel`` (its ``dispatch`` counting it as ``outcome``); the queries of each transaction
    naming it, checked against ``ceilings``."""
    s = suite()
    member = s.enrol(**LI)
    s.rpc.notifications.set_preferences(member["id"], {"channels": [channel]})
    delivery = results_ready(s, member["id"])
    trips = Trips(s.notifications)
    try:
        assert s.dispatch(NOW).get(outcome) == 1
        transactions = trips.all_of(delivery["id"])
    finally:
        trips.close()
    for queries in transactions:
        print("transaction", *(query[:200].replace("\n", " ") for query in queries), sep="\n  ")
    counts = [len(queries) for queries in transactions]
    print(f"\nround trips per transaction naming the delivery: {counts}")
    over = [(n, ceiling) for n, ceiling in zip(counts, ceilings, strict=False) if n > ceiling]
    assert len(counts) <= len(ceilings) and not over, f"measured {counts}, ceilings {ceilings}"
    return transactions


@pytest.mark.backends("postgresql")
def test_sending_a_delivery_stays_within_its_round_trips(suite):
    sent_with_trips(suite, "sms", "sent", SEND_CEILINGS)

INBOX_CEILINGS = [3, 4, 4]
"""The same for the in-app inbox, whose message is written in the transaction that records the sending (one
statement more there, one transaction less: the inbox's own was [2] of four transactions before, issue 17)."""


@pytest.mark.backends("postgresql")
def test_an_inbox_message_is_written_with_the_record_of_its_sending(suite):
    transactions = sent_with_trips(suite, "inbox", "delivered", INBOX_CEILINGS)  # the inbox delivers at once
    (last,) = [queries for queries in transactions if any("inbox_messages" in query for query in queries)]
    assert any("UPDATE deliveries" in query for query in last), last  # with the record of its sending
