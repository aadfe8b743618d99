"""Authentication at the gateway: who is behind a request.

- **Systems** send an API key (``Authorization: Bearer cl_<key id>_<secret>``). The key id finds the
  row; the secret is compared by SHA-256 in constant time (keys are random, 190 bits: a slow hash buys
  nothing). A key may be narrowed to some permissions of its role, may expire, and is rotated by
  issuing a successor while the old key keeps working for an overlap (no downtime).
- **People** send the access token they got by signing in (``Authorization: Bearer <JWT>``): its
  signature and expiry are checked, then its session must still be open and its user active.
- **Signed webhooks** (``gateway.webhooks``) authenticate on routes declared ``webhook=True`` only.

Verified keys and open sessions are cached for ``AUTH_CACHE_SECONDS`` so that a request costs no
database read; a revocation takes effect at once on the replica that made it and within that time on
the others.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from nameko.extensions import DependencyProvider
from sqlalchemy import select
from werkzeug.wrappers import Request

from gateway import lockout, security_events
from gateway.models import ApiKey, StaffSession, StaffUser
from gateway.passwords import Passwords
from gateway.principal import Principal, check_scope, parse_scope
from gateway.staff import Accounts, Lifetimes
from gateway.tokens import LEEWAY_SECONDS, AccessClaims, TokenKeys, looks_like_jwt
from gateway.webhooks import DEFAULT_TOLERANCE, WebhookVerifier
from services.kit.caller import ALL_BRANCHES, ROLES, Identity
from services.kit.clock import as_utc, utcnow
from services.kit.config import group_from_config
from services.kit.db import Store
from services.kit.errors import Invalid, NotFound
from services.kit.paging import keyset_page

KEY_PREFIX = "cl"
_ALPHABET = string.ascii_letters + string.digits
MAX_OVERLAP = timedelta(days=30)


def _hash(secret: str) -> str:
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
    row = ApiKey(id=uuid.uuid4(), key_id=key_id, secret_hash=_hash(secret), name=name, role=role,
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


class Authenticator(DependencyProvider):
    """Resolves a request's credentials to a ``Principal`` (or None: unauthenticated)."""

    def setup(self) -> None:
        from services.kit.db import Database

        config = self.container.config
        self.database = next(d for d in self.container.dependencies if isinstance(d, Database))
        self.cache_seconds = float(config.get("AUTH_CACHE_SECONDS", 30))
        self.token_keys = TokenKeys.from_config(config)
        self.lifetimes = Lifetimes.from_config(config)
        self._keys: dict[str, tuple[float, str, Principal | None]] = {}
        self._sessions: dict[str, tuple[float, Principal | None]] = {}
        self._tokens: dict[bytes, AccessClaims] = {}  # verified access tokens by SHA-256, until they expire

    def start(self) -> None:
        store = self.database.store
        config = self.container.config
        self.accounts = Accounts(store, Passwords(config), self.token_keys, self.lifetimes,
                                 lockout.Policy.from_config(config), group_from_config(config),
                                 on_sessions_ended=self.forget_sessions)
        self.webhooks = WebhookVerifier(store, self.cache_seconds,
                                        float(config.get("WEBHOOK_TOLERANCE_SECONDS", DEFAULT_TOLERANCE)))

    # -- per request ---------------------------------------------------------------------------

    def principal(self, request: Request) -> Principal | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        if looks_like_jwt(token):
            return self._staff(token)
        parsed = parse_api_key(token)
        if parsed is None:
            return None
        return self._api_key(*parsed)

    def authenticate(self, request: Request) -> Identity | None:
        principal = self.principal(request)
        return principal.identity if principal is not None else None

    def _api_key(self, key_id: str, secret: str) -> Principal | None:
        now = time.monotonic()
        cached = self._keys.get(key_id)
        if cached is None or cached[0] < now:
            cached = (now + self.cache_seconds, *self._load_key(key_id))
            if len(self._keys) > 10_000:
                self._keys.clear()
            self._keys[key_id] = cached
        expires, secret_hash, principal = cached
        if principal is None or not hmac.compare_digest(secret_hash, _hash(secret)):
            return None
        return principal

    def _load_key(self, key_id: str) -> tuple[str, Principal | None]:
        with self.database.store.transaction() as session:
            row = session.scalars(select(ApiKey).where(ApiKey.key_id == key_id)).first()
            if row is None or row.revoked_at is not None or (row.expires_at and row.expires_at <= utcnow()):
                return "", None
            branches = tuple(b for b in row.branches.split(",") if b) or ()
            identity = Identity(kind="system", subject=f"key:{row.key_id}", role=row.role, branches=branches,
                                name=row.name)
            return row.secret_hash, Principal(identity, credential=f"key:{row.family or row.key_id}",
                                              scope=parse_scope(row.permissions))

    def _staff(self, token: str) -> Principal | None:
        # verifying a JWT costs ~70 µs; a token seen before is known by its hash until it expires
        digest = hashlib.sha256(token.encode()).digest()
        claims = self._tokens.get(digest)
        if claims is None or claims.expires + LEEWAY_SECONDS <= time.time():
            claims = self.token_keys.read_access(token)
            if claims is None:
                self._tokens.pop(digest, None)
                return None
            if len(self._tokens) > 50_000:
                self._tokens.clear()
            self._tokens[digest] = claims
        now = time.monotonic()
        cached = self._sessions.get(claims.session_id)
        if cached is None or cached[0] < now:
            cached = (now + self.cache_seconds, self._load_session(claims.session_id))
            if len(self._sessions) > 50_000:
                self._sessions.clear()
            self._sessions[claims.session_id] = cached
        principal = cached[1]
        if principal is None or principal.identity.subject != claims.user_id:
            return None
        return principal

    def _load_session(self, session_id: str) -> Principal | None:
        try:
            sid = uuid.UUID(session_id)
        except ValueError:
            return None
        with self.database.store.transaction() as session:
            found = session.execute(select(StaffSession, StaffUser).join(StaffUser, StaffSession.user_id == StaffUser.id)
                                    .where(StaffSession.id == sid)).first()
            if found is None:
                return None
            staff_session, user = found
            if (staff_session.revoked_at is not None or as_utc(staff_session.expires_at) <= utcnow()
                    or user.status != "active"):
                return None
            identity = Identity(kind="staff", subject=str(user.id), role=user.role,
                                branches=tuple(b for b in user.branches.split(",") if b), name=user.display_name)
            return Principal(identity, credential=f"user:{user.id}", session_id=str(staff_session.id),
                             password_change_required=user.password_change_required)

    def forget_sessions(self, session_ids: list[str]) -> None:
        for session_id in session_ids:
            self._sessions.pop(session_id, None)

    def forget_key(self, key_id: str) -> None:
        self._keys.pop(key_id, None)

    def get_dependency(self, worker_ctx: Any) -> Authenticator:
        return self


__all__ = ["ALL_BRANCHES", "Authenticator", "IssuedKey", "issue_api_key", "revoke_api_key", "rotate_api_key"]
