"""Who is behind a request, as the gateway sees it: the ``Identity`` that travels to the services,
plus what only the gateway needs (which credential, what it is narrowed to)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from gateway import permissions
from services.kit.caller import ROLES, Identity
from services.kit.errors import Invalid


@dataclass(frozen=True)
class Principal:
    identity: Identity
    credential: str  # stable name of the credential: "key:<family>", "user:<id>", "webhook:<id>"
    scope: frozenset[str] | None = None  # the permissions a narrowed credential keeps (None: its role's)
    session_id: str | None = None  # staff sign-ins only
    password_change_required: bool = False

    @cached_property
    def context(self) -> str:
        """The identity as it travels in nameko context data (serialised once per cached credential)."""
        return self.identity.to_context()

    def may(self, permission: str | None) -> bool:
        if permission is None or not permissions.allowed(self.identity.role, permission):
            return False
        return self.scope is None or permission in self.scope


def parse_scope(raw: str | None) -> frozenset[str] | None:
    if not raw:
        return None
    return frozenset(p for p in raw.split(",") if p)


def check_scope(role: str, wanted: list[str] | None) -> str | None:
    """Validate a narrowing of ``role`` to ``wanted`` permissions; returns the stored form."""
    if role not in ROLES:
        raise Invalid(f"Unknown role {role!r}.", {"role": [f"One of {', '.join(ROLES)}."]})
    if not wanted:
        return None
    unknown = [p for p in wanted if p not in permissions.GRANTS]
    if unknown:
        raise Invalid(f"Unknown permission {unknown[0]!r}.", {"permissions": [f"Unknown: {p}" for p in unknown]})
    beyond = [p for p in wanted if not permissions.allowed(role, p)]
    if beyond:
        raise Invalid(f"The role {role} does not hold {beyond[0]!r}; a key can only be narrowed.",
                      {"permissions": [f"Not held by {role}: {p}" for p in beyond]})
    return ",".join(sorted(set(wanted)))
