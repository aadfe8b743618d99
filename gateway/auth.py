"""Authentication at the gateway: who is behind a request.

Systems send an API key (``Authorization: Bearer cl_<key id>_<secret>``). The key id finds the row;
the secret is compared by SHA-256 in constant time (keys are random, 190+ bits: a slow hash buys
nothing). Verified keys are cached for ``AUTH_CACHE_SECONDS`` so that a request costs no database
read; revocation takes effect within that time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nameko.extensions import DependencyProvider
from sqlalchemy import select
from werkzeug.wrappers import Request

from gateway.models import ApiKey
from services.kit.caller import ALL_BRANCHES, ROLES, Identity
from services.kit.clock import utcnow
from services.kit.db import Store
from services.kit.errors import Invalid

KEY_PREFIX = "cl"
_ALPHABET = string.ascii_letters + string.digits


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_api_key(token: str) -> tuple[str, str] | None:
    parts = token.split("_")
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


@dataclass(frozen=True)
class IssuedKey:
    key: str  # shown once; never stored
    key_id: str
    role: str
    branches: tuple[str, ...]


def issue_api_key(store: Store, name: str, role: str, branches: tuple[str, ...],
                  expires_at: datetime | None = None) -> IssuedKey:
    if role not in ROLES:
        raise Invalid(f"Unknown role {role!r}.", {"role": [f"One of {', '.join(ROLES)}."]})
    if not branches:
        raise Invalid("A key needs at least one branch (or * for all).", {"branches": ["Required."]})
    key_id = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    secret = "".join(secrets.choice(_ALPHABET) for _ in range(32))
    with store.transaction() as session:
        session.add(ApiKey(id=uuid.uuid4(), key_id=key_id, secret_hash=_hash(secret), name=name, role=role,
                           branches=",".join(branches), created_at=utcnow(), expires_at=expires_at))
    return IssuedKey(key=f"{KEY_PREFIX}_{key_id}_{secret}", key_id=key_id, role=role, branches=branches)


def revoke_api_key(store: Store, key_id: str) -> bool:
    with store.transaction() as session:
        row = session.scalars(select(ApiKey).where(ApiKey.key_id == key_id)).first()
        if row is None or row.revoked_at is not None:
            return False
        row.revoked_at = utcnow()
        return True


class Authenticator(DependencyProvider):
    """Resolves a request's credentials to an ``Identity`` (or None: unauthenticated)."""

    def setup(self) -> None:
        from services.kit.db import Database

        self.database = next(d for d in self.container.dependencies if isinstance(d, Database))
        self.cache_seconds = float(self.container.config.get("AUTH_CACHE_SECONDS", 30))
        self._cache: dict[str, tuple[float, str, Identity | None]] = {}

    def authenticate(self, request: Request) -> Identity | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        parsed = parse_api_key(token.strip())
        if parsed is None:
            return None
        return self._api_key(*parsed)

    def _api_key(self, key_id: str, secret: str) -> Identity | None:
        now = time.monotonic()
        cached = self._cache.get(key_id)
        if cached is None or cached[0] < now:
            cached = (now + self.cache_seconds, *self._load(key_id))
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key_id] = cached
        _expires, secret_hash, identity = cached
        if identity is None or not hmac.compare_digest(secret_hash, _hash(secret)):
            return None
        return identity

    def _load(self, key_id: str) -> tuple[str, Identity | None]:
        with self.database.store.transaction() as session:
            row = session.scalars(select(ApiKey).where(ApiKey.key_id == key_id)).first()
            if row is None or row.revoked_at is not None or (row.expires_at and row.expires_at <= utcnow()):
                return "", None
            branches = tuple(b for b in row.branches.split(",") if b) or ()
            return row.secret_hash, Identity(kind="system", subject=f"key:{row.key_id}", role=row.role,
                                             branches=branches, name=row.name)

    def get_dependency(self, worker_ctx: Any) -> Authenticator:
        return self


__all__ = ["ALL_BRANCHES", "Authenticator", "IssuedKey", "issue_api_key", "revoke_api_key"]
