"""Evidence that concurrent work really overlapped, for the race tests (PostgreSQL).

A race test that passes because its requests happened one after the other proves nothing. Two kinds of
evidence, used together:

- ``LockWaits``: a green thread samples ``pg_stat_activity`` and ``pg_locks`` of one database every few
  milliseconds and keeps every transaction it saw waiting for a lock (an advisory lock of ``kit.locks``
  with its key, or a row: ``transactionid`` / ``tuple``). A wait means two transactions wanted the same
  thing at the same moment.
- ``overlapping``: intervals (start, end) of two handlers' transactions, as their own rows record them;
  pairs whose intervals intersect ran at the same time, whether or not a lock then made one wait.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import eventlet

_SAMPLE = """
SELECT a.pid, a.xact_start, a.wait_event, l.classid, l.objid
FROM pg_stat_activity a
LEFT JOIN pg_locks l ON l.pid = a.pid AND NOT l.granted AND l.locktype = 'advisory'
WHERE a.datname = current_database() AND a.wait_event_type = 'Lock' AND a.pid <> pg_backend_pid()
"""


def dsn(database_url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as psycopg2 takes it."""
    return database_url.replace("postgresql+psycopg2://", "postgresql://")


def advisory_keys(database_url: str, names: Iterable[str]) -> dict[tuple[int, int], str]:
    """(classid, objid) as ``pg_locks`` shows the advisory lock ``kit.locks`` takes for each name."""
    import psycopg2

    connection = psycopg2.connect(dsn(database_url))
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT n, hashtextextended(n, 0) FROM unnest(%s) AS n", (list(names),))
            rows = cursor.fetchall()
    finally:
        connection.close()
    return {((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF): name for name, key in rows}


@dataclass
class LockWaits:
    """Transactions of one database seen waiting for a lock while the block ran (see the module)."""

    database_url: str
    interval: float = 0.002
    samples: int = 0
    waiting: set[tuple[Any, ...]] = field(default_factory=set)  # (pid, xact_start, wait_event, classid, objid)

    def __enter__(self) -> LockWaits:
        import psycopg2

        self._connection = psycopg2.connect(dsn(self.database_url))
        self._connection.autocommit = True
        self._running = True
        self._thread = eventlet.spawn(self._run)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._running = False
        self._thread.wait()
        self._connection.close()

    def _run(self) -> None:
        with self._connection.cursor() as cursor:
            while self._running:
                cursor.execute(_SAMPLE)
                self.waiting.update(cursor.fetchall())
                self.samples += 1
                eventlet.sleep(self.interval)

    def on(self, keys: dict[tuple[int, int], str]) -> set[str]:
        """The names among ``keys`` (from ``advisory_keys``) that some transaction waited for."""
        return {keys[(classid, objid)] for _pid, _start, event, classid, objid in self.waiting
                if event == "advisory" and (classid, objid) in keys}

    def count(self, *events: str) -> int:
        """How many waiting transactions were seen, of these wait events (all, if none given)."""
        return len({(pid, start, event) for pid, start, event, _c, _o in self.waiting if not events or event in events})


def overlapping(first: tuple[datetime, datetime], second: tuple[datetime, datetime]) -> bool:
    """Whether two (start, end) intervals share a moment."""
    return first[0] < second[1] and second[0] < first[1]
