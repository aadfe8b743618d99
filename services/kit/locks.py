"""Serialising work on one aggregate: a transaction-scoped lock taken before any check-then-act read.

A handler that reads rows to decide what to write ("has this visit earned yet?", "is this member merged?")
is only right if no other transaction can write those rows between its read and its commit. Row locks do
that when the row exists; when the rows are still to be written (the first refund of a visit, the earn a
refund must reverse), there is nothing to lock. ``serialise(session, kind, key)`` locks the *name* of the
aggregate instead, until the transaction ends::

    serialise(session, "points.visit", visit_id)            # one at a time per visit
    serialise(session, "points.member", member_id, shared=True)   # many readers of an alias ...
    serialise(session, "points.member", member_id)                # ... or the one merge that changes it

**PostgreSQL**: ``pg_advisory_xact_lock(hashtextextended('<kind>:<key>', 0))`` (or ``_shared``). The lock
lives in memory, is released at commit or rollback, and re-taking it in the same transaction is free.
Taken first in a READ COMMITTED transaction, every statement after it sees what the previous holder
committed (PostgreSQL makes a commit visible before it releases the commit's locks). Two names with the
same 64-bit hash only serialise a little more than needed; they never break anything.

**SQLite**: nothing to do. The kit passes every transaction on a SQLite file through one green gate per
process (``kit.db``: ``BEGIN IMMEDIATE``, one at a time), and SQLite means one process per service, so
transactions never overlap there at all.

**Lock order** (what keeps two transactions from each waiting for the other):

1. the kit's own claims come first and need no care: the idempotency key row (a twin of the same
   command waits there before it holds anything else), and the inbox row (written at commit, unique per
   event and consumer);
2. then aggregate locks taken with ``serialise``, in this order: the visit (``points.visit``) before
   members (``points.member``), several members in the order of the merge chain being followed (shared
   locks never wait for each other; only a merge or its reversal takes one exclusively, one member, and
   before anything else);
3. then rows, in each service's documented order (points: a member's copy, then accounts in member-id
   order, then redemption, reward and coupon rows; records: the patient, then the visit, then the
   appointment; members: member rows in id order).

Never take a ``serialise`` lock while holding a row lock of rule 3: do the aggregate's checks first.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

_EXCLUSIVE_SQL = "SELECT pg_advisory_xact_lock(hashtextextended(:lock_name, 0))"
_SHARED_SQL = "SELECT pg_advisory_xact_lock_shared(hashtextextended(:lock_name, 0))"
_EXCLUSIVE = text(_EXCLUSIVE_SQL)
_SHARED = text(_SHARED_SQL)


def lock_name(kind: str, key: object) -> str:
    """The text whose hash names the lock (what ``pg_locks`` shows is its hash, split in two halves)."""
    return f"{kind}:{key}"


def serialise(session: Session, kind: str, key: object, shared: bool = False) -> None:
    """Hold the lock on aggregate ``kind``/``key`` until this transaction ends (waiting for it if taken).

    ``shared``: many holders at once, but none while an exclusive holder has it (and the other way
    round). A no-op on SQLite, whose transactions the kit already runs one at a time.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(_SHARED if shared else _EXCLUSIVE, {"lock_name": lock_name(kind, key)})


def serialise_many(session: Session, kind: str, keys: list[object], shared: bool = False) -> None:
    """``serialise`` for many aggregates in one round trip, taken in sorted order (two batches that share keys
    take them in the same order, so neither waits for the other while holding what it needs)."""
    if session.get_bind().dialect.name != "postgresql" or not keys:
        return
    names = sorted({lock_name(kind, key) for key in keys})
    session.execute(_MANY_SHARED if shared else _MANY, {"lock_names": names})


_MANY_SQL = ("SELECT count(pg_advisory_xact_lock{}(hashtextextended(name, 0))) "
             "FROM unnest(CAST(:lock_names AS text[])) WITH ORDINALITY AS names(name, position)")
_MANY = text(_MANY_SQL.format(""))
_MANY_SHARED = text(_MANY_SQL.format("_shared"))


def then(statement: str, shared: bool = False) -> str:
    """SQL that takes the lock named by the ``lock_name`` parameter (``lock_name(kind, key)``) and then runs
    ``statement``, in one round trip: for a hot path where ``serialise`` would cost a round trip of its own.

    PostgreSQL runs the two in turn, and at READ COMMITTED ``statement`` reads with a snapshot taken once
    the lock was granted, exactly as after ``serialise``. PostgreSQL only (psycopg2 sends both in one query
    and returns the result of the second)."""
    return f"{_SHARED_SQL if shared else _EXCLUSIVE_SQL}; {statement}"
