"""Idempotent requests at the front door: the same ``Idempotency-Key`` and body give the same answer.

Every mutating route takes the header. The first request with a key claims it (a row in the gateway's
database, per credential: two clients never share keys); its answer — status and body, encrypted, as
it may name a patient — is stored when it completes. A repeat with the same method, path and body
gets that answer again (``Idempotent-Replayed: true``) without reaching a service; a repeat with
anything else is 422; a repeat while the first is still running is 409 with ``Retry-After``. Only
successful answers are kept: a refused request (4xx) or a failure (5xx) changed nothing, so the same key
may carry the corrected request, or the same one again. This works for every route whether or not
its service RPC is idempotent; services' own ``@idempotent`` stays as the second line, for retries
that take another path (a gateway crash between the service's commit and the stored answer).

The fingerprint is a keyed hash (``kit.crypto.blind_index``): request bodies may carry passwords,
and an unkeyed hash of them could be searched offline.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, delete, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.models import IdempotentReply
from services.kit.clock import as_utc, utcnow
from services.kit.commit import AtCommit, at_commit
from services.kit.crypto import blind_index, keyring
from services.kit.db import Store
from services.kit.errors import Conflict, Invalid
from services.kit.models import UtcDateTime

MAX_KEY_LENGTH = 128
HEADER = "Idempotency-Key"


class Replayed(Exception):
    """A signed request received before, with no answer stored for it under its key: it may not act again."""


@dataclass(frozen=True)
class Stored:
    status: int
    body: str


def check_key(key: str) -> str:
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise Invalid("The Idempotency-Key must be 1-128 printable ASCII characters.",
                      {"idempotency_key": ["Not a valid idempotency key."]})
    return key


def fingerprint(method: str, path: str, query: str, body: bytes | None, parsed: Any) -> str:
    """What makes two requests "the same": method, path, query and body (JSON compared by value)."""
    if parsed is not None:
        canonical = json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    else:
        canonical = hashlib.sha256(body or b"").hexdigest()
    query = "&".join(sorted(query.split("&"))) if query else ""
    return blind_index(f"{method}\n{path}\n{query}\n{canonical}", "gateway.idempotency")


def service_key(credential: str, key: str) -> str:
    """The key passed on to a service's ``@idempotent`` RPC: namespaced by credential, at most 128."""
    combined = f"{credential}:{key}"
    if len(combined) <= MAX_KEY_LENGTH:
        return combined
    return f"{credential[:70]}:#{hashlib.sha256(key.encode()).hexdigest()[:48]}"


# Every request with a key runs these two: written as text, built once (a dialect insert with ON CONFLICT has no
# cache key and would be compiled on every call); SQLite (>= 3.35) and PostgreSQL accept both
_CLAIM = text("INSERT INTO idempotent_replies (scope, key, fingerprint, created_at) "
              "VALUES (:scope, :key, :fingerprint, :created_at) ON CONFLICT (scope, key) DO NOTHING RETURNING id"
              ).bindparams(bindparam("created_at", type_=UtcDateTime()))
# the answer, with the COMMIT in one query on PostgreSQL (``kit.commit``); its body encrypted before (the query
# goes to the driver as it is)
_COMPLETE = AtCommit("UPDATE idempotent_replies SET status = :status, body = :body, completed_at = :completed_at "
                     "WHERE scope = :scope AND key = :key", completed_at=UtcDateTime())
_BODY_CONTEXT = "idempotent_replies.body"  # the column's, as ``Encrypted`` binds it


class IdempotencyStore:
    def __init__(self, store: Store, stale_after: float, retention: timedelta) -> None:
        self.store = store
        self.stale_after = timedelta(seconds=stale_after)
        self.retention = retention

    def claim(self, scope: str, key: str, print_: str,
              receipt: Callable[[Session], bool] | None = None) -> Stored | None:
        """None: the key is ours, run the request. ``Stored``: answer with it. Raises on misuse.

        ``receipt``: a signed request's receipt (``webhooks.Receipt.write``), written first in the claim's
        transaction. If it says the signature was received before (a replay), nothing is claimed: the answer
        already given to the same request under this key is returned, or ``Replayed`` raised."""
        now = utcnow()
        for _attempt in range(2):
            try:
                with self.store.transaction() as session:
                    if receipt is not None and not receipt(session):
                        stored = self._answered(session, scope, key, print_)
                        if stored is None:
                            raise Replayed
                        return stored
                    if session.execute(_CLAIM, {"scope": scope, "key": key, "fingerprint": print_,
                                                "created_at": now}).first() is not None:
                        return None  # a new key (one statement): ours
                    query = select(IdempotentReply).where(IdempotentReply.scope == scope, IdempotentReply.key == key)
                    if self.store.is_postgresql:
                        query = query.with_for_update()
                    row = session.scalars(query).first()
                    if row is None:
                        session.add(IdempotentReply(scope=scope, key=key, fingerprint=print_, created_at=now))
                        session.flush()
                        return None
                    if row.fingerprint != print_:
                        raise Invalid("This Idempotency-Key was already used for a different request.",
                                      {"idempotency_key": ["Already used for a different request."]})
                    if row.status is not None:
                        return Stored(status=row.status, body=row.body or "")
                    if as_utc(row.created_at) + self.stale_after > now:
                        raise Conflict("A request with this Idempotency-Key is still being processed; retry shortly.",
                                       details={"retry_after": 1})
                    row.created_at = now  # its first try died with its gateway: this one takes over
                    return None
            except IntegrityError:
                continue  # a twin claimed it between our read and insert: read theirs
        raise Conflict("A request with this Idempotency-Key is still being processed; retry shortly.",
                       details={"retry_after": 1})

    def answered(self, scope: str, key: str, print_: str) -> Stored | None:
        """The stored answer of the same request under this key, if there is one (claims nothing)."""
        with self.store.transaction() as session:
            return self._answered(session, scope, key, print_)

    @staticmethod
    def _answered(session: Session, scope: str, key: str, print_: str) -> Stored | None:
        row = session.scalars(select(IdempotentReply).where(IdempotentReply.scope == scope,
                                                            IdempotentReply.key == key)).first()
        if row is None or row.status is None or row.fingerprint != print_:
            return None
        return Stored(status=row.status, body=row.body or "")

    def complete(self, scope: str, key: str, status: int, body: str) -> None:
        with self.store.transaction() as session:  # one round trip on PostgreSQL: BEGIN, the UPDATE, COMMIT
            at_commit(session, _COMPLETE, {"status": status, "body": keyring().encrypt(body, _BODY_CONTEXT),
                                           "completed_at": utcnow(), "scope": scope, "key": key})

    def release(self, scope: str, key: str) -> None:
        with self.store.transaction() as session:
            session.execute(delete(IdempotentReply).where(IdempotentReply.scope == scope, IdempotentReply.key == key,
                                                          IdempotentReply.status.is_(None)))

    def purge(self) -> None:
        with self.store.transaction() as session:
            session.execute(delete(IdempotentReply).where(IdempotentReply.created_at < utcnow() - self.retention))
