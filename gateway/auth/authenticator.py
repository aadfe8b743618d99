"""Who is behind a request: the ``Authenticator`` dependency resolves its credentials to a ``Principal``.

- **Systems** send an API key (``Authorization: Bearer cl_<key id>_<secret>``, ``gateway.auth.api_keys``).
  The key id finds the row; the secret is compared by SHA-256 in constant time.
- **People** send the access token they got by signing in (``Authorization: Bearer <JWT>``): its
  signature and expiry are checked, then its session must still be open and its user active.
- **Signed webhooks** (``gateway.auth.webhooks``) authenticate on routes declared ``webhook=True`` only.

Verified keys and open sessions are cached for ``AUTH_CACHE_SECONDS`` so that a request costs no
database read; a revocation takes effect at once on the replica that made it and within that time on
the others.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from typing import Any

from nameko.extensions import DependencyProvider
from sqlalchemy import select
from werkzeug.wrappers import Request

from gateway.auth import lockout
from gateway.auth.api_keys import hash_secret, parse_api_key
from gateway.auth.passwords import Passwords
from gateway.auth.principal import Principal, parse_scope
from gateway.auth.recent import Recent
from gateway.auth.staff import Accounts, Lifetimes
from gateway.auth.tokens import LEEWAY_SECONDS, AccessClaims, TokenKeys, looks_like_jwt
from gateway.auth.webhooks import DEFAULT_TOLERANCE, WebhookVerifier
from gateway.models import ApiKey, StaffSession, StaffUser
from services.kit.caller import Identity
from services.kit.clock import as_utc, utcnow
from services.kit.config import group_from_config
from services.kit.db import Database


class Authenticator(DependencyProvider):
    """Resolves a request's credentials to a ``Principal`` (or None: unauthenticated)."""

    def setup(self) -> None:
        config = self.container.config
        self.database = next(d for d in self.container.dependencies if isinstance(d, Database))
        self.cache_seconds = float(config.get("AUTH_CACHE_SECONDS", 30))
        self.token_keys = TokenKeys.from_config(config)
        self.lifetimes = Lifetimes.from_config(config)
        self._keys: Recent[tuple[str, Principal | None]] = Recent(self.cache_seconds, 10_000)
        self._sessions: Recent[Principal | None] = Recent(self.cache_seconds, 50_000)
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
        secret_hash, principal = self._keys.get(key_id, lambda: self._load_key(key_id))
        if principal is None or not hmac.compare_digest(secret_hash, hash_secret(secret)):
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
        principal = self.session_principal(claims.session_id)
        if principal is None or principal.identity.subject != claims.user_id:
            return None
        return principal

    def session_principal(self, session_id: str) -> Principal | None:
        """The principal of an open staff session (None once it ended): access tokens and the console's
        cookie both name one."""
        return self._sessions.get(session_id, lambda: self._load_session(session_id))

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
            self._sessions.forget(session_id)

    def forget_key(self, key_id: str) -> None:
        self._keys.forget(key_id)

    def get_dependency(self, worker_ctx: Any) -> Authenticator:
        return self

