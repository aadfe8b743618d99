"""The console's cookie and CSRF tokens: HMAC-SHA256 under the gateway's token keys (``TokenKeys``).

The cookie names a staff session of ``gateway.auth`` (the one the sign-in opened): whatever ends that
session (sign-out, a revocation by an admin, a disabled account, a password change elsewhere) ends the
console too, because every request loads the session through the ``Authenticator``. The CSRF token of
a form is derived from the same session, so a page of one session cannot post into another, and a form
posted after its session ended is refused with it. Before sign-in, a random pre-session value in its
own cookie stands in for the session (the login form is protected the same way).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid

from gateway.auth.tokens import TokenKeys

SESSION_COOKIE = "careloop_console"
PRE_SESSION_COOKIE = "careloop_console_pre"
BRANCH_COOKIE = "careloop_branch"
LANGUAGE_COOKIE = "careloop_lang"


def _mac(key: bytes, purpose: str, value: str) -> str:
    digest = hmac.new(key, f"console:{purpose}:{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")


def session_cookie(keys: TokenKeys, session_id: str, purpose: str = "session") -> str:
    """``<kid>.<session id>.<mac>``: the kid lets keys rotate without signing anyone out. ``purpose`` keeps
    the member page's cookie (``member-session``) and the console's apart: one is never read as the other."""
    return f"{keys.active}.{session_id}.{_mac(keys.keys[keys.active], purpose, session_id)}"


def read_session_cookie(keys: TokenKeys, value: str | None, purpose: str = "session") -> str | None:
    """The session id a genuine cookie of ``purpose`` names; None for anything else."""
    if not value or value.count(".") != 2:
        return None
    kid, session_id, mac = value.split(".")
    key = keys.keys.get(kid)
    if key is None or not hmac.compare_digest(mac, _mac(key, purpose, session_id)):
        return None
    try:
        return str(uuid.UUID(session_id))
    except ValueError:
        return None


def csrf_token(keys: TokenKeys, bound_to: str) -> str:
    """The CSRF token of forms shown to the session (or pre-session) ``bound_to``."""
    return f"{keys.active}.{_mac(keys.keys[keys.active], 'csrf', bound_to)}"


def csrf_valid(keys: TokenKeys, bound_to: str | None, token: str | None) -> bool:
    if not bound_to or not token or token.count(".") != 1:
        return False
    kid, mac = token.split(".")
    key = keys.keys.get(kid)
    return key is not None and hmac.compare_digest(mac, _mac(key, "csrf", bound_to))


def new_pre_session() -> str:
    return secrets.token_urlsafe(24)
