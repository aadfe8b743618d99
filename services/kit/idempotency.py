"""Idempotent commands: the same idempotency key twice gives the first answer, not a second effect.

Decorate a mutating RPC method that takes an ``idempotency_key`` argument with ``@idempotent``. With a
key, the first call's answer is stored (in ``kit_idempotency``, same transaction as its effect) and a
repeat with the same arguments gets that answer back; a repeat with *different* arguments is refused
as ``Invalid`` (the caller reused a key by mistake). Without a key the command simply runs.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.kit.clock import utcnow
from services.kit.db import worker_db_of
from services.kit.errors import Invalid
from services.kit.models import IdempotentCommand

MAX_KEY_LENGTH = 128


def request_fingerprint(arguments: dict[str, Any]) -> str:
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_key(key: Any) -> str:
    if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY_LENGTH:
        raise Invalid("The idempotency key must be a non-empty string of at most 128 characters.",
                      {"idempotency_key": ["Not a valid idempotency key."]})
    return key


def _replay(stored: IdempotentCommand, fingerprint: str) -> Any:
    if stored.request_hash != fingerprint:
        raise Invalid("This idempotency key was already used for a different request.",
                      {"idempotency_key": ["Already used for a different request."]})
    return json.loads(stored.response) if stored.response is not None else None


def idempotent(fn: Callable) -> Callable:
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
        lookup = select(IdempotentCommand).where(IdempotentCommand.command == command,
                                                 IdempotentCommand.key == key)
        stored = session.scalars(lookup).first()
        if stored is not None:
            return _replay(stored, fingerprint)
        claim = IdempotentCommand(command=command, key=key, request_hash=fingerprint, created_at=utcnow())
        session.add(claim)
        try:
            # Claim the key first: a concurrent twin waits on this row, then finds our answer.
            session.flush()
        except IntegrityError:
            session.rollback()
            return _replay(session.scalars(lookup).one(), fingerprint)
        result = fn(self, *args, **kwargs)
        claim.response = json.dumps(result)
        return result

    wrapper.__signature__ = signature  # nameko checks call signatures against this
    return wrapper
