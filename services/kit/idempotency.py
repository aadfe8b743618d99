"""Idempotent commands: the same idempotency key twice gives the first answer, not a second effect.

Decorate a mutating RPC method that takes an ``idempotency_key`` argument with ``@idempotent``. With a
key, the first call's answer is stored (in ``kit_idempotency``, same transaction as its effect) and a
repeat with the same arguments gets that answer back; a repeat with *different* arguments is refused
as ``Invalid`` (the caller reused a key by mistake). Without a key the command simply runs.

This wraps every mutating command, so it is written in SQLAlchemy Core, two statements on the first call:
the key is claimed by one ``INSERT ... ON CONFLICT DO NOTHING RETURNING id`` (SQLite >= 3.35 and PostgreSQL;
on PostgreSQL it usually carries the transaction's ``BEGIN``) and the answer stored by an ``UPDATE`` of that
id left for the commit (``kit.db.at_commit``: on PostgreSQL it travels with the ``COMMIT``). The ORM version
(SELECT, then add and flush) cost a round trip and a unit of work more per call.

A command whose first statement is a read that cannot wait (points' earn: the member's copy under its alias
lock) can have it sent with the claim, in the claim's round trip on PostgreSQL: ``@idempotent(first=First(...))``.
The claim still runs first (a twin still waits on it, the lock order is unchanged); the read follows it in the
same query and the service takes its row with ``prefetched``.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BigInteger, bindparam, column, select, text
from sqlalchemy.orm import Session

from services.kit.clock import utcnow
from services.kit.commit import AtCommit, at_commit
from services.kit.db import prepared, worker_db_of
from services.kit.errors import Invalid
from services.kit.models import IdempotentCommand, UtcDateTime
from services.kit.serializer import json_text

MAX_KEY_LENGTH = 128


def request_fingerprint(arguments: dict[str, Any]) -> str:
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_key(key: Any) -> str:
    if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY_LENGTH:
        raise Invalid("The idempotency key must be a non-empty string of at most 128 characters.",
                      {"idempotency_key": ["Not a valid idempotency key."]})
    return key


_TABLE = IdempotentCommand.__table__

# Written as text: SQLAlchemy cannot cache the compiled form of its dialect inserts with ON CONFLICT
# (they have no cache key), so they were compiled again on every call. SQLite (>= 3.35) and PostgreSQL
# accept the same statement.
_CLAIM = prepared(text("INSERT INTO kit_idempotency (command, key, request_hash, created_at) "
                        "VALUES (:command, :key, :request_hash, :created_at) "
                        "ON CONFLICT (command, key) DO NOTHING RETURNING id")
                   .bindparams(bindparam("created_at", type_=UtcDateTime())))
_LOOKUP = select(_TABLE.c.request_hash, _TABLE.c.response).where(
    _TABLE.c.command == bindparam("command"), _TABLE.c.key == bindparam("key"))
_STORE_ANSWER = AtCommit("UPDATE kit_idempotency SET response = :answer WHERE id = :claim_id", prepare=True)


def claim(session: Session, command: str, key: str, fingerprint: str) -> int | None:
    """Claim ``key`` for ``command``: the new row's id, or None when the key was already claimed.

    On PostgreSQL a concurrent twin's INSERT waits on the first claim's uncommitted row and, once that
    commits, does nothing (``ON CONFLICT``); if it rolls back, the twin's claim goes in. On SQLite the
    process gate already runs one transaction at a time.
    """
    return session.execute(_CLAIM, {"command": command, "key": key, "request_hash": fingerprint,
                                    "created_at": utcnow()}).scalar()


def replay(session: Session, command: str, key: str, fingerprint: str) -> Any:
    """The stored answer for a claimed key; ``Invalid`` if the key was used for a different request."""
    request_hash, response = session.execute(_LOOKUP, {"command": command, "key": key}).one()
    if request_hash != fingerprint:
        raise Invalid("This idempotency key was already used for a different request.",
                      {"idempotency_key": ["Already used for a different request."]})
    return json.loads(response) if response is not None else None


_CLAIM_MANY = (text("INSERT INTO kit_idempotency (command, key, request_hash, created_at) "
                    "SELECT :command, claimed.key, claimed.request_hash, :created_at "
                    "FROM unnest(CAST(:keys AS text[]), CAST(:hashes AS text[])) AS claimed(key, request_hash) "
                    "ON CONFLICT (command, key) DO NOTHING RETURNING key, id")
               .bindparams(bindparam("created_at", type_=UtcDateTime())))
_RELEASE = text("DELETE FROM kit_idempotency WHERE id IN :ids").bindparams(bindparam("ids", expanding=True))


def claim_many(session: Session, command: str, keyed: list[tuple[str, str]]) -> dict[str, int]:
    """``claim`` for many (key, fingerprint) pairs in one statement on PostgreSQL: key -> claim id of those
    newly claimed (the others were claimed before: ``replay`` them)."""
    if session.get_bind().dialect.name != "postgresql":
        claimed = {key: claim(session, command, key, fingerprint) for key, fingerprint in keyed}
        return {key: claim_id for key, claim_id in claimed.items() if claim_id is not None}
    rows = session.execute(_CLAIM_MANY, {"command": command, "keys": [key for key, _ in keyed],
                                         "hashes": [fingerprint for _, fingerprint in keyed], "created_at": utcnow()})
    return dict(rows.all())


def release(session: Session, claim_ids: list[int]) -> None:
    """Give claimed keys back (their commands refused the request: a corrected one may use the key again)."""
    if claim_ids:
        session.execute(_RELEASE, {"ids": claim_ids})


def store_answer(session: Session, claim_id: int, answer: Any) -> None:
    """Keep ``answer`` as the claimed key's answer, written with the commit (for commands that claim keys
    themselves, one per item of a batch: ``members.batches``)."""
    at_commit(session, _STORE_ANSWER, {"claim_id": claim_id, "answer": json_text(answer)})


@dataclass(frozen=True)
class First:
    """A command's first read, sent in the claim's round trip (PostgreSQL; elsewhere the service runs it itself).

    ``sql``: the read, one row at most, as the service would send it alone: statements joined by ``"; "`` whose
    last one is the ``SELECT`` that answers (e.g. a lock and a read, ``kit.locks.then``); ``columns``: the
    ``SELECT``'s typed result columns, in its order; ``types``: types of its parameters; ``params(arguments)``: the
    parameters from the command's arguments (by name), or an exception (a malformed id): then the read is not sent
    and the service's own statement reports it. The service asks for the row with ``prefetched(session, first,
    params)``.
    """

    sql: str
    columns: tuple[Any, ...]
    params: Callable[[dict[str, Any]], dict[str, Any]]
    types: dict[str, Any] = field(default_factory=dict)
    prepare: bool = False
    """The claim and the read as statements prepared once per connection (``kit.db.prepared``): for a command on the
    hottest path (points' earn), whose statements PostgreSQL can type without help."""


_FIRST_READ = "careloop_first_read"
NOT_SENT = object()
"""What ``prefetched`` answers when the read was not sent with the claim."""
_claims_with: dict[int, Any] = {}  # First -> its statement with the claim, built once


def _claim_with(first: First) -> Any:
    """The claim, then ``first``'s read in one query: the claim's id travels to the read's row in a transaction-
    local setting (only the last statement of a query answers)."""
    statement = _claims_with.get(id(first))
    if statement is None:
        before, _, select_sql = first.sql.rpartition("; ")
        sql = ("WITH claimed AS (INSERT INTO kit_idempotency (command, key, request_hash, created_at) "
               "VALUES (:command, :key, :request_hash, :created_at) ON CONFLICT (command, key) DO NOTHING RETURNING id) "
               "SELECT set_config('careloop.claim', coalesce((SELECT CAST(id AS text) FROM claimed), ''), true); "
               + (before + "; " if before else "")
               + "SELECT careloop_read.*, CAST(nullif(current_setting('careloop.claim'), '') AS bigint) "
               f"AS careloop_claim_id FROM (SELECT 1) AS one LEFT JOIN ({select_sql}) AS careloop_read ON true")
        bound = [bindparam("created_at", type_=UtcDateTime())]
        bound += [bindparam(name, type_=type_) for name, type_ in first.types.items()]
        statement = (text(sql).bindparams(*bound)  # the read's columns, then the claim
                     .columns(*first.columns, column("careloop_claim_id", BigInteger())))
        statement = _claims_with[id(first)] = prepared(statement) if first.prepare else statement
    return statement


def _claim_and_read(session: Session, command: str, key: str, fingerprint: str, first: First | None,
                    arguments: dict[str, Any]) -> int | None:
    """``claim``; with ``first`` on PostgreSQL, its read too, in the same round trip (its row kept for
    ``prefetched``)."""
    if first is None or session.get_bind().dialect.name != "postgresql":
        return claim(session, command, key, fingerprint)
    try:
        params = first.params(arguments)
    except Exception:  # the service's own statement reports a malformed argument, as without this
        return claim(session, command, key, fingerprint)
    row = session.execute(_claim_with(first), {**params, "command": command, "key": key, "request_hash": fingerprint,
                                               "created_at": utcnow()}).one()
    session.info[_FIRST_READ] = (first, params, row)
    return row.careloop_claim_id


def prefetched(session: Session, first: First, params: dict[str, Any]) -> Any:
    """The row of ``first``'s read sent with the claim with these ``params`` (once; None if it found nothing), or
    ``NOT_SENT`` when it was not sent (SQLite, another command, other parameters): run the read yourself then."""
    sent = session.info.get(_FIRST_READ)
    if sent is None or sent[0] is not first or sent[1] != params:
        return NOT_SENT
    del session.info[_FIRST_READ]
    row = sent[2]
    return None if all(value is None for value in row[:-1]) else row


def idempotent(fn: Callable | None = None, *, first: First | None = None) -> Callable:
    """Decorate a command (``@idempotent``, or ``@idempotent(first=...)`` to send its first read with the claim)."""
    if fn is None:
        return functools.partial(idempotent, first=first)
    signature = inspect.signature(fn)
    if "idempotency_key" not in signature.parameters:
        raise TypeError(f"{fn.__name__} must take an idempotency_key argument to be @idempotent")
    command = fn.__name__

    @functools.wraps(fn)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        key = bound.arguments.get("idempotency_key")
        if key is None:
            return fn(self, *args, **kwargs)
        key = check_key(key)
        arguments = {k: v for k, v in bound.arguments.items() if k not in ("self", "idempotency_key")}
        fingerprint = request_fingerprint(arguments)
        session = worker_db_of(self).session
        # Claim the key first: a concurrent twin waits on this row, then finds our answer.
        claim_id = _claim_and_read(session, command, key, fingerprint, first, arguments)
        if claim_id is None:
            session.info.pop(_FIRST_READ, None)
            return replay(session, command, key, fingerprint)
        try:
            result = fn(self, *args, **kwargs)
        finally:
            session.info.pop(_FIRST_READ, None)
        store_answer(session, claim_id, result)
        return result

    wrapper.__signature__ = signature  # nameko checks call signatures against this
    return wrapper
