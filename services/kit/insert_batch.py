"""Many rows into one table in one statement, without SQLAlchemy's per-value bookkeeping (imports' batches).

``session.execute(insert(table), rows)`` is right for a handful of rows; for a batch of hundreds its
``insertmanyvalues`` names, processes and binds every value of every row in Python (a 500-row batch of members'
37 columns: 18,500 bound parameters, about 150 us a row on this machine, as much as the row's own checks).
``insert_rows(session, table, rows)`` does the same insert on PostgreSQL (psycopg2) with each column's own bind
processor applied once per value — the same code SQLAlchemy runs: ``Encrypted`` columns sealed, ``UtcDateTime``
made UTC — then each row quoted by psycopg2 (``mogrify``, in C; a value that is the same object in every row, quoted once)
into one ``INSERT ... VALUES (...), (...)`` run on the session's connection. Nothing else changes: the session's transaction and savepoints, a unique
violation raised as SQLAlchemy's ``IntegrityError``, the columns left out taking their scalar defaults (a column
whose default is a function, left out, sends the batch through SQLAlchemy's insert instead), statement events
(round-trip counts) seeing one statement. Elsewhere (SQLite) it is SQLAlchemy's insert.

    insert_rows(session, Member.__table__, rows)   # rows: dicts of column name -> value, the same keys each
    insert_rows(session, Run.__table__, rows, skip_conflicts_on=("journey_id", "member_id", "cause"), returning="id")
    # -> the ids of the rows inserted (``ON CONFLICT (...) DO NOTHING RETURNING id``: one a cause had, left out)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from psycopg2.extensions import encodings
from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from services.kit.db import dialect_insert


def insert_rows(session: Session, table: Table, rows: list[dict[str, Any]], skip_conflicts_on: tuple[str, ...] = (),
                returning: str | None = None) -> list[Any]:
    """Insert ``rows`` (the same keys in each) into ``table`` in ``session``'s transaction, in one statement.
    ``skip_conflicts_on``: rows that would break the unique index of those columns are skipped (``ON CONFLICT DO
    NOTHING``); ``returning``: the values of that column of the rows inserted are answered (else nothing)."""
    if not rows:
        return []
    connection = session.connection()
    dialect = connection.dialect
    given = list(rows[0])
    left_out = [column for column in table.columns if column.name not in rows[0] and column.default is not None]
    if (dialect.name, dialect.driver) != ("postgresql", "psycopg2") or any(
            not column.default.is_scalar for column in left_out) or any(len(row) != len(given) for row in rows):
        statement = (dialect_insert(session, table).on_conflict_do_nothing(index_elements=list(skip_conflicts_on))
                     if skip_conflicts_on else insert(table))
        if returning is None:
            session.execute(statement, rows)
            return []
        return list(session.scalars(statement.returning(table.c[returning]), rows))
    defaults = [column.default.arg for column in left_out]
    names = given + [column.name for column in left_out]
    processors: list[Callable[[Any], Any] | None] = [table.c[name].type._cached_bind_processor(dialect)
                                                     for name in names]
    processed = [[value if process is None else process(value)
                  for value, process in zip([row[name] for name in given] + defaults, processors, strict=True)]
                 for row in rows]
    cursor = connection.connection.cursor()
    try:
        template, varying = _template(cursor, processed)
        values = b",".join(cursor.mogrify(template, [row[at] for at in varying]) for row in processed)
    finally:
        cursor.close()
    quote = dialect.identifier_preparer
    statement = (f"INSERT INTO {quote.format_table(table)} ({', '.join(quote.quote(name) for name in names)}) "
                 f"VALUES {values.decode(encodings[connection.connection.dbapi_connection.encoding])}")
    if skip_conflicts_on:
        statement += f" ON CONFLICT ({', '.join(quote.quote(name) for name in skip_conflicts_on)}) DO NOTHING"
    if returning is None:
        connection.exec_driver_sql(statement, execution_options={"no_parameters": True})
        return []
    statement += f" RETURNING {quote.quote(returning)}"
    result = connection.exec_driver_sql(statement, execution_options={"no_parameters": True})
    process = table.c[returning].type._cached_result_processor(dialect, None)  # as SQLAlchemy would give it
    return [value if process is None else process(value) for value, in result]


def _template(cursor: Any, processed: list[list[Any]]) -> tuple[bytes, list[int]]:
    """The row template for ``mogrify``, with each value that is the very same object in every row (the batch's
    time, a status, a default, None) quoted once into it, and the positions of the values quoted row by row.
    The same object quotes the same way each time, so the statement is the one quoting every value would give
    (a batch of members: 15 of 37 values, a third of the quoting's cost); only identity counts, never equality
    (``1 == True``, equal times in other zones, quote differently)."""
    parts: list[bytes] = []
    varying: list[int] = []
    for at, column in enumerate(zip(*processed, strict=True)):
        if len(column) > 1 and len(set(map(id, column))) == 1:
            parts.append(cursor.mogrify("%s", (column[0],)).replace(b"%", b"%%"))
        else:
            parts.append(b"%s")
            varying.append(at)
    return b"(" + b",".join(parts) + b")", varying
