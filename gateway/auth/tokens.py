"""Access and refresh tokens of signed-in staff.

- **Access token**: a JWT (HS256) naming the user and the session (``sid``), valid for
  ``ACCESS_TOKEN_SECONDS`` (15 minutes by default). Its header carries ``kid``, the id of the key that
  signed it, so keys rotate without signing anyone out: add a key, make it the signing one, drop the
  old one after the access lifetime has passed.
- **Refresh token**: ``clr_<random>``, opaque, stored as SHA-256 only, used once: each refresh gives a
  new pair; a refresh token presented a second time means it was copied, and its whole session ends.

Keys: ``TOKEN_KEYS`` (config) or ``CARELOOP_TOKEN_KEYS`` (environment) = ``kid=<base64 ≥ 32 bytes>,...``;
``TOKEN_KEY_ID`` / ``CARELOOP_TOKEN_KEY_ID`` = the signing key (default: the last listed).
``python -m gateway.auth.tokens generate`` prints a fresh key.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt

ISSUER = "careloop-gateway"
AUDIENCE = "careloop-api"
REFRESH_PREFIX = "clr_"
LEEWAY_SECONDS = 5


class TokenKeysMissing(RuntimeError):
    """No signing key configured: the gateway refuses to start rather than sign with a guessable key."""


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    session_id: str
    role: str
    branches: tuple[str, ...]
    expires: int


class TokenKeys:
    def __init__(self, keys: dict[str, bytes], active: str) -> None:
        self.keys = keys
        self.active = active

    @classmethod
    def from_config(cls, config: dict[str, Any], env: Any = os.environ) -> TokenKeys:
        raw = config.get("TOKEN_KEYS") or env.get("CARELOOP_TOKEN_KEYS")
        if not raw:
            raise TokenKeysMissing("Set CARELOOP_TOKEN_KEYS (kid=<base64 of 32+ random bytes>); "
                                   "`python -m gateway.auth.tokens generate` makes one.")
        keys: dict[str, bytes] = {}
        for item in str(raw).split(","):
            kid, _, encoded = item.strip().partition("=")
            try:
                key = base64.b64decode(encoded, validate=True)
            except ValueError:
                key = b""
            if not kid or len(key) < 32:
                raise TokenKeysMissing(f"token key {kid!r} must be an id and at least 32 bytes in base64")
            keys[kid] = key
        active = config.get("TOKEN_KEY_ID") or env.get("CARELOOP_TOKEN_KEY_ID") or list(keys)[-1]
        if active not in keys:
            raise TokenKeysMissing(f"token key id {active!r} is not among the token keys")
        return cls(keys, active)

    def issue_access(self, user_id: str, session_id: str, role: str, branches: tuple[str, ...],
                     now: datetime, lifetime_seconds: int) -> tuple[str, int]:
        issued = int(now.timestamp())
        expires = issued + lifetime_seconds
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": user_id, "sid": session_id, "role": role,
                  "branches": list(branches), "iat": issued, "nbf": issued, "exp": expires,
                  "jti": uuid.uuid4().hex, "typ": "access"}
        token = jwt.encode(claims, self.keys[self.active], algorithm="HS256", headers={"kid": self.active})
        return token, expires

    def read_access(self, token: str) -> AccessClaims | None:
        """The claims of a valid, unexpired access token signed by a known key; None otherwise."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self.keys.get(kid) if isinstance(kid, str) else None
            if key is None:
                return None
            claims = jwt.decode(token, key, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER,
                                leeway=LEEWAY_SECONDS,
                                options={"require": ["exp", "iat", "sub", "sid", "aud", "iss"]})
        except jwt.PyJWTError:
            return None
        if claims.get("typ") != "access":
            return None
        return AccessClaims(user_id=str(claims["sub"]), session_id=str(claims["sid"]),
                            role=str(claims.get("role", "")), branches=tuple(claims.get("branches") or ()),
                            expires=int(claims["exp"]))


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


def new_refresh_token() -> tuple[str, str]:
    """(the token to hand out once, the hash to store)."""
    token = REFRESH_PREFIX + secrets.token_urlsafe(32)
    return token, hash_refresh_token(token)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def generate_key() -> str:
    return f"t{secrets.token_hex(3)}={base64.b64encode(os.urandom(32)).decode()}"


if __name__ == "__main__":  # pragma: no cover - operator command
    if sys.argv[1:] == ["generate"]:
        print(f"CARELOOP_TOKEN_KEYS={generate_key()}")
    else:
        print("usage: python -m gateway.auth.tokens generate", file=sys.stderr)
        sys.exit(2)
