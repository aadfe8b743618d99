"""A replica that died while sending: its claimed messages are taken back after the lease — resent when
nothing can have gone out (or the provider dedupes), failed as "outcome unknown" otherwise, never twice."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from tests.harness import store_for

NOW = "2027-03-10T02:00:00Z"
LI = {"full_name": "Li Na", "phone": "13900139000", "birth_date": "1985-02-03", "home_branch": "SH01",
      "consents": {"sms": True}}


def crash_while_sending(url: str, delivery_id: str, provider_called: bool) -> None:
    """What a replica killed mid-way leaves behind: the row claimed by it, long ago."""
    store = store_for(url)
    try:
        with store.transaction() as session:
            key = uuid.UUID(delivery_id).hex if store.is_sqlite else delivery_id
            session.execute(text(
                "UPDATE deliveries SET state = 'sending', claimed_by = 'dead-replica', channel = 'sms', "
                "claimed_at = :long_ago, attempt_started_at = :started WHERE id = :id"),
                {"long_ago": "2000-01-01 00:00:00", "started": "2027-03-10 02:00:00" if provider_called else None,
                 "id": key})
    finally:
        store.dispose()


def test_a_dead_replicas_messages_are_taken_back_and_never_sent_twice(suite):
    s = suite(channels=("sms",), lease_seconds=60)
    member = s.enrol(**LI)
    unsent = s.rpc.notifications.schedule({"member_id": member["id"], "journey": "results_ready", "due_at": NOW,
                                           "cause": "r-1"})
    maybe_sent = s.rpc.notifications.schedule({"member_id": member["id"], "journey": "results_ready",
                                               "due_at": NOW, "cause": "r-2"})
    crash_while_sending(s.notifications.database_url, unsent["id"], provider_called=False)
    crash_while_sending(s.notifications.database_url, maybe_sent["id"], provider_called=True)

    outcome = s.dispatch(NOW)
    assert outcome["recovered"] == 2
    assert s.rpc.notifications.get_delivery(unsent["id"])["state"] == "sent"
    unknown = s.rpc.notifications.get_delivery(maybe_sent["id"])
    assert unknown["state"] == "failed" and "outcome unknown" in unknown["reason"]
    assert len(s.providers.requests("sms")) == 1
