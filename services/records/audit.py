"""The audit trail of health-data access: who (user, role, branches), when, what (member, resource),
why (the caller's reason), and whether it was granted or refused. Append-only: nothing here updates
or deletes an entry.

``@clinical("profile", "read")`` guards an RPC method that reads or writes health data:
- a caller whose role may not see health data is refused with ``Forbidden``, and the refusal is
  written in a transaction of its own (the worker's own transaction is rolled back with the error);
- the caller must give a reason;
- a granted access is written in the worker's transaction, so it commits with the read or change
  it describes (a reply is never sent for an access that was not recorded).
Put it *above* ``@idempotent`` so that a refused caller never claims an idempotency key.
"""

from __future__ import annotations

import functools
import inspect
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.kit.caller import Identity
from services.kit.clock import utcnow
from services.kit.db import Store, worker_db_of
from services.kit.paging import keyset_page
from services.kit.telemetry import call_id_var, counter, request_id_var
from services.records import access
from services.records.models import AuditEntry

REFUSED = counter("careloop_records_health_access_refused_total", "Health-data accesses refused", ("role",))
GRANTED = counter("careloop_records_health_access_total", "Health-data accesses granted", ("resource", "action"))


def entry(caller: Identity, action: str, resource: str, member_id: Any, reason: str | None, outcome: str,
          resource_id: str | None = None, detail: str | None = None, at: datetime | None = None) -> AuditEntry:
    return AuditEntry(
        at=at or utcnow(), actor_kind=caller.kind, actor=caller.subject[:80], actor_role=caller.role[:32],
        actor_branches=",".join(caller.branches)[:200], action=action, resource=resource,
        member_id=_canonical(member_id), resource_id=resource_id,
        reason=None if reason is None else str(reason)[:200], outcome=outcome,
        detail=None if detail is None else detail[:200], request_id=(request_id_var.get() or None),
        call_id=(call_id_var.get() or None),
    )


def _canonical(member_id: Any) -> str | None:
    """A member id as the trail is searched by (canonical UUID text), or what was asked, cut to size."""
    if member_id is None:
        return None
    try:
        return str(uuid.UUID(str(member_id)))
    except ValueError:
        return str(member_id)[:64]


def changed_fields(arguments: dict[str, Any]) -> str:
    """What a profile write says in the audit trail: the names of the fields it changes, never their values."""
    changes = arguments.get("changes") if isinstance(arguments.get("changes"), dict) else {}
    return "fields: " + ",".join(sorted(name for name in changes if name != "expected_version"))


def marked_teeth(arguments: dict[str, Any]) -> str:
    """What a chart write says in the audit trail: the teeth it marks."""
    marks = (arguments.get("marks") or {}).get("marks") if isinstance(arguments.get("marks"), dict) else None
    return "teeth: " + ",".join(sorted({str(m.get("tooth")) for m in marks or [] if isinstance(m, dict)}))


def record_refusal(store: Store, caller: Identity, action: str, resource: str, member_id: Any,
                   reason: Any) -> None:
    """Write a refusal in its own transaction: it must outlive the error that rolls the worker back."""
    with store.transaction() as session:
        session.add(entry(caller, action, resource, member_id, reason if isinstance(reason, str) else None,
                          "refused"))
    REFUSED.labels(caller.role).inc()


def clinical(resource: str, action: str, describe: Callable[[dict[str, Any]], str | None] | None = None
             ) -> Callable[[Callable], Callable]:
    """Guard a health-data RPC taking ``member_id`` and ``reason`` (see the module's docstring)."""

    def decorate(fn: Callable) -> Callable:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            arguments = signature.bind(self, *args, **kwargs).arguments
            member_id, reason = arguments.get("member_id"), arguments.get("reason")
            caller: Identity = self.caller
            worker_db = worker_db_of(self)
            if not access.may_see_health_data(caller):
                if worker_db.has_session:  # pragma: no cover - a guard misplaced below @idempotent
                    raise RuntimeError("@clinical must be applied above anything that opens the session")
                record_refusal(worker_db.store, caller, action, resource, member_id, reason)
                raise access.refusal(caller)
            reason = access.check_reason(reason)
            result = fn(self, *args, **kwargs)
            detail = describe(arguments) if describe is not None else None
            worker_db.session.add(entry(caller, action, resource, member_id, reason, "granted", detail=detail))
            GRANTED.labels(resource, action).inc()
            return result

        wrapper.__signature__ = signature  # nameko checks call signatures against this
        return wrapper

    return decorate


def trail(session: Session, criteria: dict[str, Any]) -> tuple[list[AuditEntry], str | None]:
    """Entries matching ``criteria`` (member, actor, outcome, time window), newest first."""
    query = select(AuditEntry)
    if criteria.get("member_id"):
        query = query.where(AuditEntry.member_id == _canonical(criteria["member_id"]))
    if criteria.get("actor"):
        query = query.where(AuditEntry.actor == criteria["actor"])
    if criteria.get("outcome"):
        query = query.where(AuditEntry.outcome == criteria["outcome"])
    if criteria.get("since"):
        query = query.where(AuditEntry.at >= criteria["since"])
    if criteria.get("until"):
        query = query.where(AuditEntry.at < criteria["until"])
    return keyset_page(session, query, AuditEntry.at, AuditEntry.id, criteria["limit"], criteria.get("cursor"),
                       descending=True)

