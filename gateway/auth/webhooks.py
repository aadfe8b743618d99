"""Inbound webhooks: each request signed with HMAC-SHA256 over its timestamp and body.

A sending system (an integration) signs every request with its secret::

    X-CareLoop-Integration: his-jingan
    X-CareLoop-Timestamp: 1767225600                 (Unix seconds, when it was sent)
    X-CareLoop-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>

A request more than ``WEBHOOK_TOLERANCE_SECONDS`` (300) old or ahead is refused, and so is a second
arrival of the same signature inside that window (a replay) — unless it carries the
``Idempotency-Key`` of an answered request with the same body, which is then answered again with no
second effect (a sender's immediate retry of identical bytes). Senders re-sign each attempt. The scheme itself
is ``services.kit.signing`` (outbound deliveries are signed the same way). While a secret is rotated
both the old and the new one verify (the sender may send both signatures, comma-separated).
Secrets are stored encrypted (``kit.crypto``) because verifying needs them in the clear.
Routes opt in with ``@route(..., webhook=True)``: such a route accepts only signed requests.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NamedTuple

from sqlalchemy import bindparam, delete, or_, select, text
from sqlalchemy.exc import IntegrityError

from gateway.auth import security_events
from gateway.auth.principal import Principal, check_scope, parse_scope
from gateway.auth.recent import Recent
from gateway.models import WebhookIntegration, WebhookReceipt, WebhookSecret
from services.kit.caller import Identity
from services.kit.clock import as_utc, utcnow
from services.kit.db import Store
from services.kit.errors import Conflict, Invalid, NotFound, Unauthenticated
from services.kit.models import UtcDateTime
from services.kit.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

INTEGRATION_HEADER = "X-CareLoop-Integration"
SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE = 300
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,63}$")


def signed_headers(integration: str, secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers a sender adds (used by tests and by anyone writing a client)."""
    stamp = int(time.time()) if timestamp is None else timestamp
    return {INTEGRATION_HEADER: integration, TIMESTAMP_HEADER: str(stamp), SIGNATURE_HEADER: sign(secret, stamp, body)}


# every signed request writes its receipt: one statement built once, a replay found by the conflict (no exception)
_RECEIVED = text("INSERT INTO webhook_receipts (integration_id, signature_hash, received_at) "
                 "VALUES (:integration, :digest, :received_at) "
                 "ON CONFLICT (integration_id, signature_hash) DO NOTHING RETURNING id"
                 ).bindparams(bindparam("received_at", type_=UtcDateTime()))


@dataclass(frozen=True)
class Receipt:
    """A validly signed request's signature, as ``webhook_receipts`` keeps it inside the freshness window."""

    integration: str
    digest: str  # of the signatures sent, sorted (a sender may send two while a secret is rotated)

    def write(self, session: Any) -> bool:
        """Keep it in ``session``'s transaction; False: the signature was received before (a replay). A signed
        request with an ``Idempotency-Key`` writes it in its claim's transaction (``IdempotencyStore.claim``):
        one commit, not two, for every HIS bill."""
        return session.execute(_RECEIVED, {"integration": self.integration, "digest": self.digest,
                                           "received_at": utcnow()}).first() is not None


class WebhookVerifier:
    """Verifies signed requests against the integrations in the gateway's database (cached briefly)."""

    def __init__(self, store: Store, cache_seconds: float, tolerance: float = DEFAULT_TOLERANCE) -> None:
        self.store = store
        self.tolerance = tolerance
        self._integrations: Recent[tuple[Principal | None, tuple[str, ...]]] = Recent(cache_seconds, 1000)

    def verify(self, headers: Any, body: bytes, address: str) -> tuple[Principal, Receipt]:
        """The integration behind a validly signed request, and the request's ``Receipt``, not yet written: the
        caller writes it (``remember``, or in its idempotency claim's transaction) and refuses a replay unless it
        can answer it again harmlessly."""
        integration = headers.get(INTEGRATION_HEADER, "")
        stamp = headers.get(TIMESTAMP_HEADER, "")
        given = [part.strip() for part in headers.get(SIGNATURE_HEADER, "").split(",") if part.strip()]
        if not integration or not stamp or not given:
            raise Unauthenticated(f"This route takes signed requests: send {INTEGRATION_HEADER}, {TIMESTAMP_HEADER} "
                                  f"and {SIGNATURE_HEADER} (see the API document).")
        try:
            sent = int(stamp)
        except ValueError:
            raise Unauthenticated(f"{TIMESTAMP_HEADER} must be Unix seconds.") from None
        if abs(time.time() - sent) > self.tolerance:
            self._reject(integration, address, "stale_timestamp")
            raise Unauthenticated(f"The request was signed more than {int(self.tolerance // 60)} minutes away from "
                                  "now; re-sign it with the current time (check the sender's clock).")
        principal, secrets_ = self._integrations.get(integration, lambda: self._load(integration))
        valid = False
        for secret in secrets_:
            expected = sign(secret, stamp, body)
            for candidate in given:
                valid |= hmac.compare_digest(expected, candidate)
        if principal is None or not valid:
            self._reject(integration, address, "bad_signature")
            raise Unauthenticated("The signature does not match this integration's secret.")
        digest = hashlib.sha256(f"{integration}\x00{','.join(sorted(given))}".encode()).hexdigest()
        return principal, Receipt(integration, digest)

    def _load(self, slug: str) -> tuple[Principal | None, tuple[str, ...]]:
        now = utcnow()
        with self.store.transaction() as session:
            row = session.get(WebhookIntegration, slug)
            if row is None or row.disabled_at is not None:
                return None, ()
            found = session.scalars(select(WebhookSecret.secret).where(
                WebhookSecret.integration_id == slug,
                or_(WebhookSecret.expires_at.is_(None), WebhookSecret.expires_at > now))).all()
            identity = Identity(kind="system", subject=f"webhook:{slug}", role=row.role,
                                branches=tuple(b for b in row.branches.split(",") if b), name=row.name)
            return Principal(identity, credential=f"webhook:{slug}", scope=parse_scope(row.permissions)), tuple(found)

    def remember(self, receipt: Receipt) -> bool:
        """Write ``receipt`` in a transaction of its own; False: the signature was received before (a replay)."""
        with self.store.transaction() as session:
            return receipt.write(session)

    def refuse_replay(self, principal: Principal, address: str) -> Unauthenticated:
        self._reject(principal.credential.removeprefix("webhook:"), address, "replay")
        return Unauthenticated("This signed request was already received (a replay); re-sign each attempt with "
                               "a fresh timestamp, and send an Idempotency-Key to retry safely.")

    def _reject(self, slug: str, address: str, reason: str) -> None:
        with self.store.transaction() as session:
            security_events.record(session, "webhook_rejected", target=f"webhook:{slug[:64]}", address=address,
                                   reason=reason)

    def forget(self, slug: str) -> None:
        self._integrations.forget(slug)

    def purge(self) -> None:
        cutoff = utcnow() - timedelta(seconds=2 * self.tolerance)
        with self.store.transaction() as session:
            session.execute(delete(WebhookReceipt).where(WebhookReceipt.received_at < cutoff))


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Integration:
    """An integration as answered (``WebhookIntegrationSchema``): the stored row, read through this object,
    and the secrets looked at (none: it shows no active secret)."""

    row: WebhookIntegration
    secrets: tuple[WebhookSecret, ...] = ()

    def __getattr__(self, name: str) -> Any:
        if name == "row":
            raise AttributeError(name)
        return getattr(self.row, name)


class Issued(NamedTuple):
    """An integration and its new signing secret, shown once (``IssuedWebhookSecretSchema``)."""

    integration: Integration
    secret: str

    def __getattr__(self, name: str) -> Any:
        return getattr(self.integration, name)


def active_secrets(integration: Integration) -> list[WebhookSecret]:
    """The secrets that verify now."""
    now = utcnow()
    return [s for s in integration.secrets if s.expires_at is None or as_utc(s.expires_at) > now]


def create_integration(store: Store, slug: str, name: str, role: str, branches: str,
                       wanted: list[str] | None, actor: str | None) -> Issued:
    if not SLUG.match(slug or ""):
        raise Invalid("An integration id is 2-64 characters: a-z, 0-9 and dashes.", {"id": ["Not a valid id."]})
    scope = check_scope(role, wanted)
    secret = new_secret()
    now = utcnow()
    try:
        with store.transaction() as session:
            if session.get(WebhookIntegration, slug) is not None:
                raise Conflict(f"An integration {slug!r} exists already.", {"id": ["Taken."]})
            row = WebhookIntegration(id=slug, name=name, role=role, branches=branches, permissions=scope,
                                     created_at=now)
            stored = WebhookSecret(integration_id=slug, secret=secret, created_at=now)
            session.add_all([row, stored])
            security_events.record(session, "webhook_integration_created", actor=actor, target=f"webhook:{slug}",
                                   role=role, branches=branches, permissions=scope)
    except IntegrityError:
        raise Conflict(f"An integration {slug!r} exists already.", {"id": ["Taken."]}) from None
    return Issued(Integration(row, (stored,)), secret)


def rotate_secret(store: Store, slug: str, overlap: timedelta, actor: str | None) -> Issued:
    """A new secret; the current ones stay valid for ``overlap`` so the sender can switch."""
    secret = new_secret()
    now = utcnow()
    with store.transaction() as session:
        row = session.get(WebhookIntegration, slug)
        if row is None:
            raise NotFound(f"No integration {slug!r}.")
        current = session.scalars(select(WebhookSecret).where(WebhookSecret.integration_id == slug)).all()
        for old in current:
            if old.expires_at is None or as_utc(old.expires_at) > now + overlap:
                old.expires_at = now + overlap
        fresh = WebhookSecret(integration_id=slug, secret=secret, created_at=now)
        session.add(fresh)
        security_events.record(session, "webhook_secret_rotated", actor=actor, target=f"webhook:{slug}",
                               overlap_seconds=int(overlap.total_seconds()))
    return Issued(Integration(row, (*current, fresh)), secret)


def disable_integration(store: Store, slug: str, actor: str | None) -> Integration:
    with store.transaction() as session:
        row = session.get(WebhookIntegration, slug)
        if row is None:
            raise NotFound(f"No integration {slug!r}.")
        if row.disabled_at is None:
            row.disabled_at = utcnow()
            security_events.record(session, "webhook_integration_disabled", actor=actor, target=f"webhook:{slug}")
        return Integration(row)


def list_integrations(store: Store) -> list[Integration]:
    with store.transaction() as session:
        rows = session.scalars(select(WebhookIntegration).order_by(WebhookIntegration.id)).all()
        secrets_ = session.scalars(select(WebhookSecret)).all()
        by_integration: dict[str, list[WebhookSecret]] = {}
        for secret in secrets_:
            by_integration.setdefault(secret.integration_id, []).append(secret)
        return [Integration(row, tuple(by_integration.get(row.id, ()))) for row in rows]
