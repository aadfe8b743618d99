"""PostgreSQL's and SQLite's ``INSERT .. ON CONFLICT DO NOTHING`` with a cache key, so compiled once.

SQLAlchemy 2.0 gives the dialects' ``Insert`` no cache key (``inherit_cache = False``; sqlalchemy#10445, fixed in
2.1 by describing the ON CONFLICT clauses to the cache), so every execution of ``postgresql.insert(...)`` compiled the
statement again: 13 % of notifications' CPU in the paid-visit flow (a delivery and a journey run a visit). These
subclasses are that fix for ``DO NOTHING``: the clause's three attributes described as SQLAlchemy 2.1 describes them.
A ``DO UPDATE`` keeps the dialect's own clause, which has no cache key, so such a statement is still compiled on each
execution — slower, never wrong. ``kit.db.dialect_insert`` makes these.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects.postgresql import dml as postgresql_dml
from sqlalchemy.dialects.sqlite import dml as sqlite_dml
from sqlalchemy.sql.visitors import InternalTraversal

_TARGET = [("inferred_target_elements", InternalTraversal.dp_multi_list),
           ("inferred_target_whereclause", InternalTraversal.dp_clauseelement)]


class _PostgresDoNothing(postgresql_dml.OnConflictDoNothing):
    _traverse_internals = [("constraint_target", InternalTraversal.dp_string), *_TARGET]


class _SqliteDoNothing(sqlite_dml.OnConflictDoNothing):
    _traverse_internals = _TARGET


class _PostgresDoUpdate(postgresql_dml.OnConflictDoUpdate):
    inherit_cache = False  # said, not left to SQLAlchemy's warning: compiled on each execution, as before


class _SqliteDoUpdate(sqlite_dml.OnConflictDoUpdate):
    inherit_cache = False


class PostgresInsert(postgresql_dml.Insert):
    inherit_cache = True

    def on_conflict_do_update(self, constraint: Any = None, index_elements: Any = None, index_where: Any = None,
                              set_: Any = None, where: Any = None) -> PostgresInsert:
        statement = super().on_conflict_do_update(constraint, index_elements, index_where, set_, where)
        statement._post_values_clause = _PostgresDoUpdate(constraint, index_elements, index_where, set_, where)
        return statement

    def on_conflict_do_nothing(self, constraint: Any = None, index_elements: Any = None,
                               index_where: Any = None) -> PostgresInsert:
        statement = super().on_conflict_do_nothing(constraint, index_elements, index_where)  # a new statement
        statement._post_values_clause = _PostgresDoNothing(constraint, index_elements, index_where)
        return statement


class SqliteInsert(sqlite_dml.Insert):
    inherit_cache = True

    def on_conflict_do_update(self, index_elements: Any = None, index_where: Any = None, set_: Any = None,
                              where: Any = None) -> SqliteInsert:
        statement = super().on_conflict_do_update(index_elements, index_where, set_, where)
        statement._post_values_clause = _SqliteDoUpdate(index_elements, index_where, set_, where)
        return statement

    def on_conflict_do_nothing(self, index_elements: Any = None, index_where: Any = None) -> SqliteInsert:
        statement = super().on_conflict_do_nothing(index_elements, index_where)  # a new statement
        statement._post_values_clause = _SqliteDoNothing(index_elements, index_where)
        return statement
