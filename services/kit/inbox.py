"""The inbox: each event a handler has applied, recorded in the same transaction as the effect.

A redelivered event finds its row and is acknowledged without a second effect. Two deliveries of one
event that run at the same moment both try to insert the row; the database's unique constraint lets
one commit and rolls the other back whole.

How a redelivery finds its row: on SQLite a look-up before the handler runs (``seen``). On PostgreSQL the
look-up travels with the handler's first statement instead of costing a round trip of its own (``Check``):
``BEGIN;SELECT kit_inbox_unseen(consumer, event_id);<first statement>``, a function (migration ``kit0003``)
that raises SQLSTATE ``CL001`` for an event already handled. That query then fails as a whole, before the
handler has written or read anything, and the handler's code gets ``AlreadyHandledError`` (which the kit's
``event_handler`` turns into ``ALREADY_HANDLED``: acknowledged as a duplicate). Whatever the handler does
with that error, its worker ends as a duplicate (the check is marked refused). A handler that calls a peer
before its first statement sends the check first, alone (``kit.peers``): nothing leaves the process for an
event already applied. A handler that sends no statement at all has its event found by the inbox row's
unique constraint at commit, as two deliveries at the same moment are.

On PostgreSQL the check and the inbox row run as statements prepared once per connection (``kit.db.prepared``, with
its re-planning): every handler run sends them, and unprepared the server parsed and planned both each time.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, select, text

from services.kit.clock import utcnow
from services.kit.commit import AtCommit, at_commit
from services.kit.models import InboxEntry, UtcDateTime

ALREADY_HANDLED = type("AlreadyHandled", (), {"__repr__": lambda self: "ALREADY_HANDLED"})()
"""What a guarded handler returns for an event its service has already applied."""
NOT_WANTED = type("NotWanted", (), {"__repr__": lambda self: "NOT_WANTED"})()
"""What a guarded handler returns for an event its ``wanted`` check turned down: read by nothing, so no inbox
row (doing nothing a second time is still doing nothing)."""

ALREADY_HANDLED_SQLSTATE = "CL001"
"""What ``kit_inbox_unseen`` raises for an event already handled (migration ``kit0003``)."""
CHECK_SQL = "SELECT kit_inbox_unseen(%(careloop_inbox_consumer)s, %(careloop_inbox_event_id)s)"
"""The check as psycopg2 takes it, to go in front of a handler's first statement (``kit.db``)."""
CHECK = "careloop_inbox_check"
"""Where the worker's ``Check`` is kept: the session's ``info``, then its connection's ``info`` for the transaction."""


class AlreadyHandledError(Exception):
    """This event was already applied by this handler: its check, sent with the handler's first statement, failed."""


class Check:
    """A handler's look-up of its event in the inbox, sent with the transaction's first statement (PostgreSQL)."""

    __slots__ = ("params", "state")
    PENDING, SENT, REFUSED = "pending", "sent", "refused"

    def __init__(self, consumer: str, event_id: str) -> None:
        self.params = {"careloop_inbox_consumer": consumer, "careloop_inbox_event_id": event_id}
        self.state = Check.PENDING


def check_first(session: Any, consumer: str, event_id: str) -> None:
    """Send the look-up of (``consumer``, ``event_id``) with the first statement of ``session``'s transaction."""
    session.info[CHECK] = Check(consumer, event_id)


def refused(session: Any) -> bool:
    """Whether this session's check found its event already handled."""
    check = session.info.get(CHECK)
    return check is not None and check.state is Check.REFUSED


def skip_check(session: Any) -> None:
    """A check still waiting at commit is not sent: the inbox row goes with the commit, and its unique constraint
    finds a duplicate there (``kit.db``), as it does for two deliveries at the same moment."""
    check = session.info.get(CHECK)
    if check is not None and check.state is Check.PENDING:
        check.state = Check.SENT


@functools.cache
def _check_alone() -> Any:
    """``CHECK_SQL`` as a statement, built once; on PostgreSQL prepared under the name ``with_check``'s check runs as
    (the same compiled text). Built at first use: ``kit.db`` imports this module."""
    from services.kit.db import prepared

    return prepared(text("SELECT kit_inbox_unseen(:careloop_inbox_consumer, :careloop_inbox_event_id)"))



def check_now(session: Any) -> None:
    """Send the session's check now if it is still waiting for a first statement (before a call to a peer):
    raises ``AlreadyHandledError`` for an event already handled."""
    check = session.info.get(CHECK)
    if check is not None and check.state is Check.PENDING:
        check.state = Check.SENT  # sent by this statement itself, not in front of it
        session.execute(_check_alone(), check.params)


def attach_check(session: Any, transaction: Any, connection: Any) -> None:
    """(The session's ``after_begin``) the session's pending check goes with its connection's first statement."""
    check = session.info.get(CHECK)
    if check is not None and not transaction.nested:
        connection.info[CHECK] = check


def pending(connection: Any) -> bool:
    """Whether a check waits to go with the first statement of ``connection``'s transaction."""
    check = connection.info.get(CHECK)
    return check is not None and check.state is Check.PENDING


def with_check(connection: Any, cursor: Any, statement: str, parameters: Any,
               executemany: bool, check_sql: str = CHECK_SQL) -> tuple[str, Any, bool]:
    """(``kit.db``, at a transaction's first statement) ``statement`` with the pending check in front of it, in
    one query — or the check sent first with the ``BEGIN``, alone, when it cannot share the statement's
    parameters (an ``executemany``, positional parameters, a statement psycopg2 must not format). ``check_sql``: the
    check as this connection runs it (``kit.db``: ``CHECK_SQL`` prepared, with the same parameters). Returns the
    statement and parameters to send, and whether the ``BEGIN`` has been sent already."""
    check = connection.info.get(CHECK)
    if check is None or check.state is not Check.PENDING:
        return statement, parameters, False
    check.state = Check.SENT
    if not executemany:
        if isinstance(parameters, Mapping) and parameters:  # psycopg2 formats the whole query: merge them
            return f"{check_sql};{statement}", {**parameters, **check.params}, False
        if not parameters and "%" not in statement:  # formatted or not, the statement reads the same
            return f"{check_sql};{statement}", dict(check.params), False
    try:
        cursor.execute(f"BEGIN;{check_sql}", check.params)
    except Exception as error:
        if getattr(error, "pgcode", None) == ALREADY_HANDLED_SQLSTATE:
            check.state = Check.REFUSED
            raise AlreadyHandledError(str(error).strip()) from None
        raise
    return statement, parameters, True


def refuse_handled(context: Any) -> Exception | None:
    """(The engine's ``handle_error``) a failed check is the event already handled: ``AlreadyHandledError``."""
    if getattr(context.original_exception, "pgcode", None) != ALREADY_HANDLED_SQLSTATE:
        return None
    connection = context.connection
    check = connection.info.get(CHECK) if connection is not None and not connection.invalidated else None
    if check is not None:
        check.state = Check.REFUSED
    raise AlreadyHandledError(str(context.original_exception).strip())


def event_key(worker_ctx: Any) -> tuple[str, str] | None:
    """(consumer, event id) of an event worker, or None for any other worker or an event without id."""
    entrypoint = worker_ctx.entrypoint
    if not getattr(entrypoint, "uses_inbox", False) or not worker_ctx.args:
        return None
    payload = worker_ctx.args[0]
    event_id = payload.get("event_id") if isinstance(payload, dict) else None
    if not event_id:
        return None
    return f"{worker_ctx.container.service_name}.{entrypoint.method_name}", str(event_id)


class Entry(NamedTuple):
    """The inbox row of a handled event (plain values: an ORM instance costs ~40 µs to build, on every event)."""

    consumer: str
    event_id: str
    handled_at: datetime


def entry_for(worker_ctx: Any) -> Entry | None:
    key = event_key(worker_ctx)
    if key is None:
        return None
    return Entry(key[0], key[1], utcnow())


_RECORD = AtCommit("INSERT INTO kit_inbox (consumer, event_id, handled_at) VALUES (:consumer, :event_id, :handled_at)",
                   prepare=True, handled_at=UtcDateTime())  # written by every handler run: prepared


def record(session: Any, entry: Entry) -> None:
    """Write ``entry`` with the handler's commit (on PostgreSQL in the query that commits)."""
    at_commit(session, _RECORD, {"consumer": entry.consumer, "event_id": entry.event_id,
                                 "handled_at": entry.handled_at})


_SEEN = select(InboxEntry.id).where(InboxEntry.consumer == bindparam("consumer"),
                                    InboxEntry.event_id == bindparam("event_id"))  # built once: every event runs it


def seen(session: Any, consumer: str, event_id: str) -> bool:
    """Whether (``consumer``, ``event_id``) has its inbox row (SQLite: before every handler run; PostgreSQL checks
    with the handler's first statement instead, so this is never prepared)."""
    return session.execute(_SEEN, {"consumer": consumer, "event_id": event_id}).first() is not None


def was_handled(store: Any, entry: Entry) -> bool:
    with store.transaction() as session:
        return seen(session, entry.consumer, entry.event_id)
