"""Who is calling: the identity the gateway authenticated, carried in nameko context data.

The gateway puts the caller into the worker context (``caller``: JSON) when it calls a service; nameko
propagates context data along RPC calls. Services read it with the ``Caller`` dependency to authorise
what only the service can judge (health data) and to write audit rows. Work started by a timer or an
event acts as the service itself (kind ``system``).
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from nameko.extensions import DependencyProvider

from services.kit.errors import Forbidden

ROLES = ("group_admin", "branch_manager", "front_desk", "clinician", "customer_service", "auditor",
         "integration", "monitoring")
CLINICAL_ROLES = frozenset({"clinician"})
ALL_BRANCHES = "*"


@dataclass(frozen=True)
class Identity:
    kind: str  # "staff", "system" (API key) or "service" (the suite itself)
    subject: str  # user id, API key id or service name
    role: str
    branches: tuple[str, ...] = field(default_factory=tuple)
    name: str = ""

    @property
    def all_branches(self) -> bool:
        return ALL_BRANCHES in self.branches

    @property
    def actor(self) -> str:
        """Who did it, as audit columns and ledgers keep it: ``staff:<id> (front_desk)``, ``system:<key id>
        (integration)``, or ``service:records`` for the suite itself."""
        return f"{self.kind}:{self.subject}" if self.kind == "service" else f"{self.kind}:{self.subject} ({self.role})"

    def can_see_branch(self, branch: str | None) -> bool:
        return self.all_branches or (branch is not None and branch in self.branches)

    def require_role(self, *roles: str, action: str = "do this") -> None:
        if self.kind != "service" and self.role not in roles:
            raise Forbidden(f"Your role ({self.role}) may not {action}.")

    def require_branch(self, branch: str | None, action: str = "act for this branch") -> None:
        if self.kind != "service" and not self.can_see_branch(branch):
            raise Forbidden(f"You may not {action}: branch {branch} is not one of yours.")

    def to_context(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_context(cls, raw: Any) -> Identity | None:
        if not raw:
            return None
        if isinstance(raw, str):
            return _identity_from_json(raw)
        return cls._from_dict(dict(raw))

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> Identity:
        return cls(kind=data["kind"], subject=data["subject"], role=data["role"],
                   branches=tuple(data.get("branches") or ()), name=data.get("name", ""))

    @classmethod
    def service(cls, name: str) -> Identity:
        return cls(kind="service", subject=name, role="service", branches=(ALL_BRANCHES,))


@functools.lru_cache(maxsize=1024)
def _identity_from_json(raw: str) -> Identity:
    """Parsed once per distinct caller: the gateway sends the same text for every request of a credential,
    and an ``Identity`` is frozen, so workers may share it."""
    return Identity._from_dict(json.loads(raw))


class Caller(DependencyProvider):
    """``self.caller``: the ``Identity`` behind this call (the service itself when nobody called)."""

    def setup(self) -> None:
        self._itself = Identity.service(self.container.service_name)  # frozen: one for every worker

    def get_dependency(self, worker_ctx: Any) -> Identity:
        return Identity.from_context(worker_ctx.data.get("caller")) or self._itself
