"""API keys for systems: issue, narrow, rotate, revoke, read.

A key is ``cl_<key id>_<secret>``. Only the SHA-256 of the secret is stored (keys are random, 190 bits: a
slow hash buys nothing), so a key is shown once. A key may be narrowed to some permissions of its role,
may expire, and is rotated by issuing a successor of the same family while the old key keeps working
for an overlap (at most 30 days), so the system using it switches without downtime.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from gateway.auth import security_events
from gateway.auth.principal import check_scope, parse_scope
from gateway.models import ApiKey
from services.kit.caller import ROLES
from services.kit.clock import as_utc, utcnow
from services.kit.db import Store
from services.kit.errors import Invalid, NotFound
from services.kit.paging import keyset_page

KEY_PREFIX = "cl"
_ALPHABET = string.ascii_letters + string.digits
MAX_OVERLAP = timedelta(days=30)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_api_key(token: str) -> tuple[str, str] | None:
    parts = token.split("_")
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


@dataclass(frozen=True)
class IssuedKey:
    """A new key: its stored row (read through this object) and the key itself, shown once and never stored."""

    row: ApiKey
    key: str

    def __getattr__(self, name: str) -> Any:
        if name == "row":
            raise AttributeError(name)
        return getattr(self.row, name)


def key_status(row: ApiKey) -> str:
    """active, expired or revoked, now."""
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and as_utc(row.expires_at) <= utcnow():
        return "expired"
    return "active"


def issue_api_key(store: Store, name: str, role: str, branches: tuple[str, ...],
                  expires_at: datetime | None = None, permissions: list[str] | None = None,
                  actor: str | None = None, _family: str | None = None, _rotated_from: str | None = None) -> IssuedKey:
    """A new key (printed once by the caller; only its hash is stored)."""
    if role not in ROLES:
        raise Invalid(f"Unknown role {role!r}.", {"role": [f"One of {', '.join(ROLES)}."]})
    if not branches:
        raise Invalid("A key needs at least one branch (or * for all).", {"branches": ["Required."]})
    scope = check_scope(role, permissions)
    key_id = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    secret = "".join(secrets.choice(_ALPHABET) for _ in range(32))
    row = ApiKey(id=uuid.uuid4(), key_id=key_id, secret_hash=hash_secret(secret), name=name, role=role,
                 branches=",".join(branches), permissions=scope, family=_family or key_id,
                 rotated_from=_rotated_from, created_at=utcnow(), expires_at=expires_at)
    with store.transaction() as session:
        session.add(row)
        security_events.record(session, "api_key_rotated" if _rotated_from else "api_key_created", actor=actor,
                               target=f"key:{key_id}", role=role, branches=row.branches, permissions=scope,
                               rotated_from=_rotated_from)
    return IssuedKey(row, f"{KEY_PREFIX}_{key_id}_{secret}")


def rotate_api_key(store: Store, key_id: str, overlap: timedelta, actor: str | None = None) -> IssuedKey:
    """A successor with the same name, role, branches and permissions; the old key keeps working for
    ``overlap`` (at most 30 days) so the system using it can switch without downtime."""
    if overlap < timedelta(0) or overlap > MAX_OVERLAP:
        raise Invalid("The overlap must be between 0 and 30 days.", {"overlap_seconds": ["0 to 2592000."]})
    now = utcnow()
    with store.transaction() as session:
        old = session.scalars(select(ApiKey).where(ApiKey.key_id == key_id)).first()
        if old is None:
            raise NotFound(f"No API key {key_id}.")
        if old.revoked_at is not None or (old.expires_at and as_utc(old.expires_at) <= now):
            raise Invalid("This key is no longer valid; issue a new key instead.", {"key_id": ["Not active."]})
        if old.expires_at is None or as_utc(old.expires_at) > now + overlap:
            old.expires_at = now + overlap
        name, role, branches = old.name, old.role, tuple(b for b in old.branches.split(",") if b)
        scope, family = sorted(parse_scope(old.permissions) or []) or None, old.family or old.key_id
    return issue_api_key(store, name, role, branches, permissions=scope, actor=actor, _family=family,
                         _rotated_from=key_id)


def revoke_api_key(store: Store, key_id: str, actor: str | None = None) -> bool:
    with store.transaction() as session:
        row = session.scalars(select(ApiKey).where(ApiKey.key_id == key_id)).first()
        if row is None or row.revoked_at is not None:
            return False
        row.revoked_at = utcnow()
        security_events.record(session, "api_key_revoked", actor=actor, target=f"key:{key_id}")
        return True


def get_api_key(store: Store, key_id: str) -> ApiKey:
    with store.transaction() as session:
        row = session.scalars(select(ApiKey).where(ApiKey.key_id == key_id)).first()
        if row is None:
            raise NotFound(f"No API key {key_id}.")
        return row


def list_api_keys(store: Store, criteria: dict[str, Any]) -> dict[str, Any]:
    """A page of keys (rows), oldest first."""
    query = select(ApiKey)
    if criteria.get("role"):
        query = query.where(ApiKey.role == criteria["role"])
    if criteria.get("family"):
        query = query.where(ApiKey.family == criteria["family"])
    if criteria.get("status") == "revoked":
        query = query.where(ApiKey.revoked_at.is_not(None))
    elif criteria.get("status") == "active":
        query = query.where(ApiKey.revoked_at.is_(None)).where(
            (ApiKey.expires_at.is_(None)) | (ApiKey.expires_at > utcnow()))
    with store.transaction() as session:
        rows, cursor = keyset_page(session, query, ApiKey.created_at, ApiKey.id, criteria["limit"],
                                   criteria.get("cursor"))
        return {"items": rows, "next_cursor": cursor}


