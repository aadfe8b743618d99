"""The inbox: each event a handler has applied, recorded in the same transaction as the effect.

A redelivered event finds its row and is acknowledged without a second effect. Two deliveries of one
event that run at the same moment both try to insert the row; the database's unique constraint lets
one commit and rolls the other back whole.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select

from services.kit.clock import utcnow
from services.kit.commit import AtCommit, at_commit
from services.kit.models import InboxEntry, UtcDateTime

ALREADY_HANDLED = type("AlreadyHandled", (), {"__repr__": lambda self: "ALREADY_HANDLED"})()
"""What a guarded handler returns for an event its service has already applied."""
NOT_WANTED = type("NotWanted", (), {"__repr__": lambda self: "NOT_WANTED"})()
"""What a guarded handler returns for an event its ``wanted`` check turned down: read by nothing, so no inbox
row (doing nothing a second time is still doing nothing)."""


def event_key(worker_ctx: Any) -> tuple[str, str] | None:
    """(consumer, event id) of an event worker, or None for any other worker or an event without id."""
    entrypoint = worker_ctx.entrypoint
    if not getattr(entrypoint, "uses_inbox", False) or not worker_ctx.args:
        return None
    payload = worker_ctx.args[0]
    event_id = payload.get("event_id") if isinstance(payload, dict) else None
    if not event_id:
        return None
    return f"{worker_ctx.container.service_name}.{entrypoint.method_name}", str(event_id)


def entry_for(worker_ctx: Any) -> InboxEntry | None:
    key = event_key(worker_ctx)
    if key is None:
        return None
    return InboxEntry(consumer=key[0], event_id=key[1], handled_at=utcnow())


_RECORD = AtCommit("INSERT INTO kit_inbox (consumer, event_id, handled_at) VALUES (:consumer, :event_id, :handled_at)",
                   handled_at=UtcDateTime())


def record(session: Any, entry: InboxEntry) -> None:
    """Write ``entry`` with the handler's commit (on PostgreSQL in the query that commits)."""
    at_commit(session, _RECORD, {"consumer": entry.consumer, "event_id": entry.event_id,
                                 "handled_at": entry.handled_at})


_SEEN = select(InboxEntry.id).where(InboxEntry.consumer == bindparam("consumer"),
                                    InboxEntry.event_id == bindparam("event_id"))  # built once: every event runs it


def seen(session: Any, consumer: str, event_id: str) -> bool:
    return session.execute(_SEEN, {"consumer": consumer, "event_id": event_id}).first() is not None


def was_handled(store: Any, entry: InboxEntry) -> bool:
    with store.transaction() as session:
        return seen(session, entry.consumer, entry.event_id)
