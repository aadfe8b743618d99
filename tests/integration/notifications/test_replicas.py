"""Two notifications replicas, their schedulers running on their own timers against one PostgreSQL
database, send each due message exactly once (claims with FOR UPDATE SKIP LOCKED)."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import text

from services.members.service import MembersService
from services.notifications.service import NotificationsService
from tests.harness import store_for, wait_for
from tests.integration.notifications.conftest import notification_settings

MEMBERS = 30


def test_two_replicas_send_each_due_message_exactly_once(start_service, databases, imitations, rpc):
    start_service(MembersService, "postgresql")
    url = databases.fresh("postgresql", "notifications")
    settings = notification_settings(imitations, ("sms",), scheduler=True, quiet_hours="off", batch_size=2,
                                     send_concurrency=2)
    replicas = [start_service(NotificationsService, database_url=url, **settings) for _ in range(2)]
    imitations.slow_down(0.3)  # one replica alone would need seconds: both get their share
    proxy = rpc()
    phones = [f"+86139{number:08d}" for number in range(1, MEMBERS + 1)]
    for number, phone in enumerate(phones):
        proxy.members.enrol({"full_name": f"Member {number}", "phone": phone, "birth_date": "1980-01-01",
                             "home_branch": "SH01", "consents": {"sms": True}})

    wait_for(lambda: len(imitations.accepted("sms")) >= MEMBERS, timeout=60, message="every welcome sent")
    wait_for(lambda: _sent_rows(url) == MEMBERS, timeout=20, message="every delivery recorded as sent")
    imitations.slow_down(0)
    sends = Counter(request["body"]["To"] for request in imitations.requests("sms"))
    assert sorted(sends) == sorted(phones) and set(sends.values()) == {1}
    store = store_for(url)
    try:
        with store.engine.connect() as connection:
            senders = Counter(row[0] for row in connection.execute(text(
                "SELECT claimed_by FROM deliveries WHERE state = 'sent'")))
            sent_steps = connection.execute(text(
                "SELECT count(*) FROM delivery_steps WHERE state = 'sent'")).scalar_one()
    finally:
        store.dispose()
    assert len(senders) == len(replicas)  # both schedulers worked, on different rows
    assert sent_steps == MEMBERS


def _sent_rows(url: str) -> int:
    store = store_for(url)
    try:
        with store.engine.connect() as connection:
            return connection.execute(text("SELECT count(*) FROM deliveries WHERE state = 'sent'")).scalar_one()
    finally:
        store.dispose()
