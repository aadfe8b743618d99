"""Signed links that act without a login (a reminder's confirm and cancel links): the one token scheme.

    <payload>.<signature>   payload: base64url of compact JSON {"s": subject, "d": action, "e": expiry
                            (Unix seconds), "n": nonce}; signature: base64url HMAC-SHA256(secret,
                            "careloop-link.v1." + payload)

The service that makes the message signs (notifications); the service that owns what the link acts on
verifies and acts (records), and keeps each used nonce so that a link acts once. A token is not
encrypted: it names an appointment id and an action, nothing personal. The secret comes from the
environment (``APPOINTMENT_LINK_SECRET``) and is never logged; a token is a credential: never logged either.

Rotation: a new secret signs from the moment it is set; the secrets it replaces go to
``APPOINTMENT_LINK_PREVIOUS_SECRETS`` (comma-separated) on the verifying service, which accepts a token signed
by any of them, so links already sent (a reminder goes out up to a week ahead) keep working until they expire
or the old secret is removed. Remove an old secret once every link it signed has expired (links expire at
their appointment's start), or at once when it has leaked — that voids its links.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nameko.extensions import DependencyProvider

from services.kit.errors import Gone, NotFound

SECRET_SETTING = "APPOINTMENT_LINK_SECRET"
"""The config key (top level: the signing and the verifying service read it) of the links' secret."""
PREVIOUS_SETTING = "APPOINTMENT_LINK_PREVIOUS_SECRETS"
"""The config key of the secrets a rotation replaced, comma-separated: still accepted, never used to sign."""

MIN_SECRET_LENGTH = 32
TOKEN_PATTERN = r"[A-Za-z0-9_-]{20,400}\.[A-Za-z0-9_-]{43}"
"""What a token looks like (the gateway checks a path's shape before asking a service)."""
_TOKEN = re.compile(TOKEN_PATTERN, re.ASCII)
_DOMAIN = b"careloop-link.v1."

INVALID_MESSAGE = "This link is not valid (it may have been copied incompletely). Please call the clinic."
EXPIRED_MESSAGE = "This link has expired. Please call the clinic."


@dataclass(frozen=True)
class Claims:
    subject: str  # what the link acts on (an appointment id)
    action: str  # what it does there ("confirm", "cancel")
    expires_at: datetime
    nonce: str  # one per link: the acting service records it when used


@dataclass(frozen=True)
class Keys:
    """The secrets a verifying service accepts: the one that signs now first, then those a rotation replaced."""

    current: str
    previous: tuple[str, ...] = ()

    @property
    def accepted(self) -> tuple[str, ...]:
        return (self.current, *self.previous) if self.current else ()


def _checked(setting: str, secret: str) -> str:
    if secret and len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(f"{setting} must be at least {MIN_SECRET_LENGTH} characters")
    return secret


def secret_of(config: dict[str, Any]) -> str:
    """The configured secret ("" when links are off); a secret too short to be safe is refused at start."""
    return _checked(SECRET_SETTING, str(config.get(SECRET_SETTING) or ""))


def keys_of(config: dict[str, Any]) -> Keys:
    """The signing secret and the replaced ones still accepted (each as long as a secret must be)."""
    previous = str(config.get(PREVIOUS_SETTING) or "")
    return Keys(secret_of(config), tuple(_checked(PREVIOUS_SETTING, part.strip())
                                         for part in previous.split(",") if part.strip()))


class LinkSecret(DependencyProvider):
    """The links' secrets (``Keys``) as a verifying service's dependency, checked when the service starts: a
    secret too short to be safe stops the service at start-up rather than failing the first link a patient
    opens."""

    def setup(self) -> None:
        self.keys = keys_of(self.container.config)

    def get_dependency(self, worker_ctx: Any) -> Keys:
        return self.keys


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode(), _DOMAIN + payload.encode("ascii"), hashlib.sha256).digest())


def sign(secret: str, claims: Claims) -> str:
    if not secret:
        raise ValueError(f"{SECRET_SETTING} is not set")
    body = {"s": claims.subject, "d": claims.action, "e": int(claims.expires_at.timestamp()), "n": claims.nonce}
    payload = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
    return f"{payload}.{_signature(secret, payload)}"


def verify(keys: Keys | str, token: str, now: datetime) -> Claims:
    """The claims of a token one of these secrets signed (a bare string: that secret alone): ``NotFound`` if
    none did (tampered, cut short, another key), ``Gone`` once it has expired."""
    accepted = Keys(keys).accepted if isinstance(keys, str) else keys.accepted
    if not accepted or not _TOKEN.fullmatch(token or ""):
        raise NotFound(INVALID_MESSAGE)
    payload, _, signature = token.partition(".")
    if not any(hmac.compare_digest(_signature(secret, payload), signature) for secret in accepted):
        raise NotFound(INVALID_MESSAGE)
    try:
        body = json.loads(_unb64(payload))
        claims = Claims(subject=str(body["s"]), action=str(body["d"]),
                        expires_at=datetime.fromtimestamp(int(body["e"]), UTC), nonce=str(body["n"]))
    except (ValueError, KeyError, TypeError):  # signed by us, so never; but never a 500 either
        raise NotFound(INVALID_MESSAGE) from None
    if now >= claims.expires_at:
        raise Gone(EXPIRED_MESSAGE, details={"expired_at": claims.expires_at.isoformat()})
    return claims
