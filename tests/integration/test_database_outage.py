"""A service whose PostgreSQL goes away keeps its process: calls fail with Unavailable, events wait, and
everything works again once the database is back.

The service reaches its database through a ``TcpProxy`` (``tests.nodes``) that the test cuts — open
connections reset, new ones refused, as in a database restart — and restores; the machine's shared
PostgreSQL is never touched.
"""

from __future__ import annotations

import uuid

import pytest
from nameko.standalone.events import event_dispatcher

from services.kit.clock import isoformat, utcnow
from services.kit.errors import Unavailable
from services.members.service import MembersService
from tests.harness import PG_ADMIN_URL, scalar, service_config, wait_for
from tests.nodes import TcpProxy

MEMBER = {"full_name": "Tang Li", "phone": "13300133000", "birth_date": "1985-09-10", "home_branch": "SH01"}


def visit(member_id: str) -> dict:
    visit_id = str(uuid.uuid4())
    return {"event_id": str(uuid.uuid4()), "occurred_at": isoformat(utcnow()), "visit_id": visit_id,
            "member_id": member_id, "branch": "SH01", "doctor_id": "d1", "kind": "return", "bill_id": f"B-{visit_id}",
            "completed_at": isoformat(utcnow()), "currency": "CNY",
            "items": [{"category": "treatment", "code": "T1", "amount_minor": 100}],
            "payments": [{"method": "cash", "amount_minor": 100}], "qualifying_minor": 100, "first_visit": False,
            "first_paid_visit": False, "referral_source": None}


@pytest.fixture
def pg_proxy():
    host_port = PG_ADMIN_URL.split("@", 1)[1].split("/", 1)[0]
    host, _, port = host_port.partition(":")
    with TcpProxy(int(port or 5432), host) as proxy:
        yield proxy, host_port


def test_a_service_lives_through_a_database_outage_and_recovers(start_service, rpc, databases, amqp_uri, pg_proxy):
    proxy, host_port = pg_proxy
    direct = databases.fresh("postgresql", "members")
    members = start_service(MembersService, database_url=direct.replace(f"@{host_port}/", f"@127.0.0.1:{proxy.port}/"),
                            EVENT_RETRY_DELAYS=[0.5, 1, 2, 4, 8])
    client = rpc(timeout=30)
    member_id = client.members.enrol(MEMBER)["id"]

    proxy.cut()  # every connection of the pool reset, new ones refused
    for _ in range(3):  # each call fails cleanly (the pool finds its connections dead, then cannot connect)
        with pytest.raises(Unavailable):
            client.members.get_member(member_id)
    during = visit(member_id)
    event_dispatcher(service_config(amqp_uri))("records", "visit_completed", during)  # waits for retry
    assert not members._died.ready()

    proxy.restore()
    wait_for(lambda: _answers(client, member_id), timeout=30, message="the service to reach its database again")
    wait_for(lambda: scalar(direct, "SELECT count(*) FROM member_visits WHERE visit_id = :v", v=during["visit_id"]),
             timeout=60, message="the event sent during the outage applied")
    assert scalar(direct, "SELECT count(*) FROM kit_inbox WHERE event_id = :e", e=during["event_id"]) == 1
    assert not members._died.ready()


def _answers(client, member_id: str) -> bool:
    try:
        return client.members.get_member(member_id)["id"] == member_id
    except Unavailable:
        return False
