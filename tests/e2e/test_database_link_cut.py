"""A database link lost in the middle of a command, through the gateway: 503 (retry under the same key), never
500, and the retry's effect happens once (issue 17: a 500 under the fault suite's "database link cut").

The server process of the very connection a command is using is terminated (``pg_terminate_backend``) at a
chosen moment: before the service's idempotency claim, just before the service's commit (which carries the
``COMMIT``), just before the kit's own ``COMMIT`` of the gateway's key claim, and of a service's replay of a
stored answer (the two that raised psycopg2's bare error: a ``RemoteError`` at the gateway is a 500).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg2
import pytest
import requests
from sqlalchemy import event
from sqlalchemy.orm import Session

from services.kit.db import Database
from services.kit.errors import Unavailable
from services.members.service import MembersService
from tests.e2e.test_gateway_dependencies import MEMBER, assert_unavailable, start_gateway
from tests.harness import PG_ADMIN_URL, scalar

_MARKED = "careloop_test_cut_mark"
OTHER = {"full_name": "Qian Hui", "phone": "13700137009", "birth_date": "1990-02-03", "home_branch": "SH01"}


def terminate(pid: int) -> None:
    """End the server process ``pid`` and wait until it has gone (bounded): the client's next query fails."""
    admin = psycopg2.connect(PG_ADMIN_URL)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", (pid,))
            deadline = time.monotonic() + 10
            while True:
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
                if cursor.fetchone()[0] == 0:
                    return
                assert time.monotonic() < deadline, f"server process {pid} still there 10 s after its termination"
                time.sleep(0.01)
    finally:
        admin.close()


class Cut:
    """Once armed: the first transaction on ``engine`` that sends a statement containing ``marker`` loses its
    connection, just before that statement (``before_marked=True``) or just before its ``COMMIT`` goes: the one
    sent with the statements left for the commit (``Store.commit``), or the kit's own when nothing was left (seen
    from the session's ``before_commit``: SQLAlchemy runs the kit's ``commit`` listener before any added later)."""

    def __init__(self, engine: Any, marker: str, before_marked: bool = False) -> None:
        self.engine = engine
        self.marker = marker
        self.before_marked = before_marked
        self.armed = False
        self.fired = 0
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(Session, "before_commit", self._before_commit)

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._statement)
        event.remove(Session, "before_commit", self._before_commit)

    def _statement(self, connection: Any, _cursor: Any, statement: str, _parameters: Any, context: Any,
                   _executemany: bool) -> None:
        if not self.armed:
            return
        # the statement as written: a hot one goes as ``EXECUTE <name>(...)`` once prepared (``kit.db.prepared``)
        written = getattr(context, "statement", None) or statement
        if self.marker in written:
            if self.before_marked:
                self._cut(connection)
                return
            connection.info[_MARKED] = True
        if connection.info.get(_MARKED) and statement.rstrip().endswith("COMMIT"):
            self._cut(connection)

    def _before_commit(self, session: Session) -> None:
        if self.armed and session.in_transaction() and session.get_bind() is self.engine:
            connection = session.connection()
            if connection.info.get(_MARKED):
                self._cut(connection)

    def _cut(self, connection: Any) -> None:
        self.armed = False
        connection.info.pop(_MARKED, None)
        terminate(connection.connection.dbapi_connection.get_backend_pid())
        self.fired += 1


@pytest.fixture
def link_cut() -> Iterator[Callable[..., Cut]]:
    made: list[Cut] = []

    def make(engine: Any, marker: str, before_marked: bool = False) -> Cut:
        made.append(Cut(engine, marker, before_marked))
        return made[-1]

    yield make
    for each in made:
        each.close()


def engine_of(container: Any) -> Any:
    return next(d for d in container.dependencies if isinstance(d, Database)).store.engine


@pytest.fixture
def members_and_gateway(start_service: Any, databases: Any) -> tuple[Any, Any]:
    members = start_service(MembersService, database_url=databases.fresh("postgresql", "members"))
    gateway = start_gateway(start_service, database_url=databases.fresh("postgresql", "gateway"))
    return members, gateway


def enrol(gateway: Any, key: str, member: dict[str, Any] = MEMBER) -> requests.Response:
    return requests.post(gateway.url + "/v1/members", json=member, timeout=30, headers={
        "Authorization": f"Bearer {gateway.key}", "Idempotency-Key": key})


def enrolments(members: Any) -> int:
    return scalar(members.database_url, "SELECT count(*) FROM members")


def test_the_gateways_key_claim_losing_its_link_at_commit_is_503_and_the_retry_enrols_once(members_and_gateway, link_cut):
    members, gateway = members_and_gateway
    cut = link_cut(engine_of(gateway.container), "INSERT INTO idempotent_replies")
    key = uuid.uuid4().hex
    cut.armed = True
    assert_unavailable(enrol(gateway, key))
    assert cut.fired == 1 and enrolments(members) == 0  # the key was never claimed: the request went no further

    retried = enrol(gateway, key)
    assert retried.status_code == 201, retried.text
    assert enrolments(members) == 1


@pytest.mark.parametrize("moment", ["before its claim", "at its commit"])
def test_the_service_losing_its_link_is_503_and_the_retry_enrols_once(members_and_gateway, link_cut, moment):
    members, gateway = members_and_gateway
    assert enrol(gateway, uuid.uuid4().hex, OTHER).status_code == 201  # a warm pool
    cut = link_cut(engine_of(members), "INSERT INTO kit_idempotency", before_marked=moment == "before its claim")
    key = uuid.uuid4().hex
    cut.armed = True
    assert_unavailable(enrol(gateway, key))
    assert cut.fired == 1 and enrolments(members) == 1  # nothing of the cut command was written

    retried = enrol(gateway, key)
    assert retried.status_code == 201, retried.text
    assert enrolments(members) == 2


def test_a_service_replaying_a_stored_answer_losing_its_link_at_commit_is_unavailable(members_and_gateway, link_cut, rpc):
    """A replay only reads (the stored answer), so the kit sends its ``COMMIT`` alone, as for any transaction with
    nothing left for its commit: a redemption retried after its answer was lost, a bill already recorded sent
    again, a command writing through the ORM only."""
    members, _gateway = members_and_gateway
    client = rpc(timeout=30)
    key = uuid.uuid4().hex
    first = client.members.enrol(MEMBER, idempotency_key=key)
    cut = link_cut(engine_of(members), "FROM kit_idempotency")  # the replay's read of the stored answer
    cut.armed = True
    with pytest.raises(Unavailable):  # a RemoteError here is what the gateway answers 500
        client.members.enrol(MEMBER, idempotency_key=key)
    assert cut.fired == 1
    assert client.members.enrol(MEMBER, idempotency_key=key) == first
    assert enrolments(members) == 1
