"""Authentication at the gateway, apart from the HTTP machinery (``gateway.http``) and the routes.

- ``authenticator`` — the ``Authenticator`` dependency: a request's credentials to a ``Principal``
- ``principal`` — who is behind a request, and a credential's narrowing (scope) to some permissions
- ``api_keys`` — systems' keys: issue, narrow, rotate, revoke
- ``staff`` — staff accounts and their sessions: sign in, refresh, sign out, change, reset, unlock
- ``tokens`` — signed access tokens (JWT) and refresh tokens; ``python -m gateway.auth.tokens generate``
- ``passwords`` — Argon2id hashes and a minimum strength
- ``lockout`` — sign-in lockout after repeated failures, per account name and per address
- ``webhooks`` — integrations that sign their requests (HMAC), their secrets, replay refusal
- ``security_events`` — the security log every change above writes in its own transaction
- ``credentials`` — operator commands: ``python -m gateway.auth.credentials ...``

Who may do what once authenticated is ``gateway.permissions`` (the route table's side of it).
"""

from gateway.auth.api_keys import (
    IssuedKey,
    get_api_key,
    issue_api_key,
    key_status,
    list_api_keys,
    revoke_api_key,
    rotate_api_key,
)
from gateway.auth.authenticator import Authenticator

__all__ = ["Authenticator", "IssuedKey", "get_api_key", "issue_api_key", "key_status", "list_api_keys",
           "revoke_api_key", "rotate_api_key"]
