"""How long the kit remembers what it has done: handled events (``kit_inbox``) and commands' stored answers
(``kit_idempotency``), and the hourly purge of what is older.

Both tables grow with every event handled and every keyed command (about three inbox rows per paid visit),
so they are purged, and what the purge costs is what the kit's guarantees lose:

- **Inbox** (``INBOX_RETENTION_DAYS``, default 30): an event delivered again after its inbox row is gone
  would be applied again. Events come back only within minutes: the broker redelivering what was not
  acknowledged (a handler's commit went through, its ack did not), or the relay publishing again what it
  had not marked sent. A dead letter replayed by hand, even months later, is safe: it was parked because its
  handler never committed, so no inbox row of it ever existed.
- **Idempotency** (``IDEMPOTENCY_RETENTION_DAYS``, default 30): a retry with the same key after that runs the
  command again. Clients retry within seconds to hours; the HIS's redeliveries within a day.

The purge walks each table from its oldest row by primary key (rows are appended in time order), deleting a
batch at a time in short transactions, and stops at the first batch that holds a row still kept: no index on
the time column, so the hot path's inserts pay for nothing. Run by the outbox relay's hourly housekeeping.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import Table, delete, select

from services.kit.clock import utcnow
from services.kit.models import IdempotentCommand, InboxEntry

log = logging.getLogger(__name__)

DEFAULT_DAYS = 30
BATCH = 5000


def retention(config: dict[str, Any], name: str) -> timedelta:
    days = float(config.get(name, DEFAULT_DAYS))
    if days <= 0:
        raise ValueError(f"{name} must be a positive number of days, not {days}")
    return timedelta(days=days)


def purge_older(store: Any, table: Table, time_column: str, keep: timedelta, batch: int = BATCH) -> int:
    """Delete ``table``'s rows whose ``time_column`` is older than ``keep``, oldest first; returns how many."""
    cutoff = utcnow() - keep
    column = table.c[time_column]
    purged = 0
    while True:
        with store.transaction() as session:
            oldest = session.execute(select(table.c.id, column).order_by(table.c.id).limit(batch)).all()
            expired = [row.id for row in oldest if row[1] < cutoff]
            if expired:
                session.execute(delete(table).where(table.c.id.in_(expired)))
        purged += len(expired)
        if len(expired) < batch:  # a kept row (or the end) came up in this batch: the rest is newer
            return purged


def purge(store: Any, inbox_keep: timedelta, idempotency_keep: timedelta) -> dict[str, int]:
    """The hourly purge of both tables; returns the rows deleted from each."""
    counts = {
        "kit_inbox": purge_older(store, InboxEntry.__table__, "handled_at", inbox_keep),
        "kit_idempotency": purge_older(store, IdempotentCommand.__table__, "created_at", idempotency_keep),
    }
    if any(counts.values()):
        log.info("purged rows past their retention: %s", counts)
    return counts
