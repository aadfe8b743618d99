"""The kit's idempotent commands against a real broker and database (SQLite and PostgreSQL).

- the same key and request twice: the first answer again, one effect (one claim, one outbox event);
- the same key with a different request: ``Invalid``, nothing written;
- two callers with one key at the same time: both get the one answer, one effect.
"""

from __future__ import annotations

import eventlet
import pytest

from services.kit import Database, Invalid, Outbox, Service, idempotent, rpc
from tests.harness import scalar

HOLD_SECONDS = 0.3
"""How long a command keeps its transaction open after claiming its key, so that a twin arrives meanwhile."""


class Ledger(Service):
    name = "idem_ledger"
    db = Database()
    events = Outbox()

    @rpc
    @idempotent
    def record(self, amount: int, idempotency_key: str | None = None) -> dict:
        event_id = self.events.emit("recorded", {"amount": amount})
        eventlet.sleep(HOLD_SECONDS)
        return {"event_id": event_id, "amount": amount}


@pytest.fixture
def ledger(start_service, databases, backend):
    return start_service(Ledger, database_url=databases.fresh(backend, "notifications"))


def effects(url: str) -> tuple[int, int]:
    return (scalar(url, "SELECT count(*) FROM kit_idempotency"),
            scalar(url, "SELECT count(*) FROM kit_outbox WHERE event_type = 'recorded'"))


def test_the_same_key_and_request_twice_gives_the_first_answer_and_one_effect(ledger, rpc):
    proxy = rpc()
    first = proxy.idem_ledger.record(5, idempotency_key="k-1")
    again = proxy.idem_ledger.record(5, idempotency_key="k-1")
    assert again == first
    assert effects(ledger.database_url) == (1, 1)


def test_the_same_key_with_another_request_is_invalid_and_writes_nothing(ledger, rpc):
    proxy = rpc()
    proxy.idem_ledger.record(5, idempotency_key="k-2")
    with pytest.raises(Invalid) as raised:
        proxy.idem_ledger.record(6, idempotency_key="k-2")
    assert "idempotency" in str(raised.value).lower()
    assert effects(ledger.database_url) == (1, 1)


def test_without_a_key_the_command_simply_runs(ledger, rpc):
    proxy = rpc()
    proxy.idem_ledger.record(1)
    proxy.idem_ledger.record(1)
    assert effects(ledger.database_url) == (0, 2)


def test_two_concurrent_callers_with_one_key_get_one_answer_and_one_effect(ledger, rpc):
    proxies = [rpc(), rpc()]
    pool = eventlet.GreenPool(2)
    answers = list(pool.imap(lambda proxy: proxy.idem_ledger.record(7, idempotency_key="k-3"), proxies))
    assert answers[0] == answers[1]
    assert effects(ledger.database_url) == (1, 1)
