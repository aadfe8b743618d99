"""What a command leaves for its commit: statements whose rows nothing reads back in the transaction.

A command's outbox rows, its stored answer and an event handler's inbox row are written only when the
transaction commits. On PostgreSQL ``Store.commit`` (``kit.db``) sends them and the ``COMMIT`` as one query,
one round trip however many there are; on SQLite, and on any other way to commit a session, they run one by
one just before the commit (the session's ``before_commit``). A rollback drops them, and so does the
rollback of the savepoint they were added in: the guarantees are those of writing them at once.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session


class AtCommit:
    """A statement a command leaves for its commit: the outbox rows, the stored answer, the inbox row.

    Nothing in the transaction reads these rows back, so they need not be written as they come. On
    PostgreSQL ``Store.commit`` sends them all, and the ``COMMIT``, as one query (one round trip, however
    many events); on SQLite they run one by one just before the commit. ``sql`` names its parameters
    ``:name``; ``types`` gives a parameter a type of its own (UTC times on SQLite).
    """

    def __init__(self, sql: str, prepare: bool = False, announce: bool = False, **types: Any) -> None:
        """``prepare``: on PostgreSQL a statement prepared once per connection (``kit.db.prepared``), for one written
        by every command (the outbox row, the stored answer). ``announce``: the values of each run are handed, once
        the transaction has committed, to the store's commit listeners (``Store.on_outbox_commit``: the outbox row,
        which the relay then publishes without reading it back)."""
        self.statement = text(sql).bindparams(*(bindparam(name, type_=type_) for name, type_ in types.items()))
        self.names = re.findall(r":(\w+)", sql)
        # psycopg2's own parameter style, each name suffixed with the statement's place in the query
        self._pyformat = re.sub(r":(\w+)", r"%(\1_{n})s", sql)
        self.prepare = prepare
        self.announce = announce
        self.plain = re.sub(r":(\w+)", r"%(\1)s", sql)  # psycopg2's style, unsuffixed: what is prepared

    def pyformat(self, n: int, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return self._pyformat.format(n=n), self.params(n, params)

    def params(self, n: int, params: dict[str, Any]) -> dict[str, Any]:
        return {f"{name}_{n}": params[name] for name in self.names}


AT_COMMIT = "careloop_at_commit"
_SAVEPOINT_MARKS = "careloop_at_commit_marks"


def at_commit(session: Session, statement: AtCommit, params: dict[str, Any]) -> None:
    """Run ``statement`` with ``params`` when ``session`` commits, in its transaction (dropped if it rolls
    back, or if the savepoint it was added in rolls back)."""
    session.info.setdefault(AT_COMMIT, []).append((statement, params))


def run_at_commit(session: Session) -> None:
    """Any commit (``session.commit()`` called directly too) first runs what is left for it, one by one."""
    for statement, params in session.info.pop(AT_COMMIT, None) or ():
        session.execute(statement.statement, params)


def mark_savepoint(session: Session, transaction: Any) -> None:
    if transaction.nested:
        session.info.setdefault(_SAVEPOINT_MARKS, {})[id(transaction)] = len(session.info.get(AT_COMMIT) or ())


def forget_rolled_back(session: Session, previous_transaction: Any) -> None:
    marks = session.info.get(_SAVEPOINT_MARKS) or {}
    if previous_transaction.nested:
        mark = marks.pop(id(previous_transaction), None)
        if mark is not None and session.info.get(AT_COMMIT):
            del session.info[AT_COMMIT][mark:]
    else:
        session.info.pop(AT_COMMIT, None)
        marks.clear()
