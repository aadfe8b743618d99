"""The kit's ON CONFLICT inserts: the dialects' own SQL, and a cache key that tells apart what differs."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table
from sqlalchemy.dialects import postgresql, sqlite

from services.kit.dialect_inserts import PostgresInsert, SqliteInsert

ROWS = Table("rows", MetaData(), Column("id", Integer, primary_key=True), Column("k", String, unique=True),
             Column("n", Integer))

FORMS = [
    lambda insert: insert(ROWS).values(id=1, k="a", n=2),
    lambda insert: insert(ROWS).values(id=1, k="a", n=2).on_conflict_do_nothing(),
    lambda insert: insert(ROWS).values(id=1, k="a", n=2).on_conflict_do_nothing(index_elements=["k"]),
    lambda insert: insert(ROWS).values(id=1, k="a", n=2).on_conflict_do_nothing(index_elements=[ROWS.c.id]),
    lambda insert: insert(ROWS).values(id=1, k="a", n=2).on_conflict_do_nothing(index_elements=["k"],
                                                                                 index_where=ROWS.c.n > 0),
    lambda insert: insert(ROWS).values(id=1, k="a", n=2).on_conflict_do_nothing(index_elements=["k"])
    .returning(ROWS.c.id),
]
"""Each with a cache key. A multi-row ``values([...])`` has none, in the dialects as in plain SQLAlchemy (its
values are part of the statement); ``executemany`` with one row's statement is what caches."""


@pytest.mark.parametrize(("ours", "theirs", "dialect"), [(PostgresInsert, postgresql.insert, postgresql.dialect()),
                                                       (SqliteInsert, sqlite.insert, sqlite.dialect())])
def test_the_same_sql_as_the_dialects_own_and_a_key_per_shape(ours, theirs, dialect):
    keys = []
    for form in FORMS:
        statement = form(ours)
        assert str(statement.compile(dialect=dialect)) == str(form(theirs).compile(dialect=dialect))
        key = statement._generate_cache_key()
        assert key is not None
        keys.append(key.key)  # what the compiled cache is keyed by
    assert len(set(keys)) == len(FORMS)  # each shape compiles to its own entry: none answers for another
    again = ours(ROWS).values(id=7, k="z", n=9).on_conflict_do_nothing(index_elements=["k"])
    assert again._generate_cache_key().key == keys[2]  # other values, the same compiled statement
    assert [bound.value for bound in again._generate_cache_key().bindparams] == [7, "z", 9]  # ... its own values


def test_do_update_stays_uncached_rather_than_wrong(recwarn):
    for ours, theirs, dialect in ((PostgresInsert, postgresql.insert, postgresql.dialect()),
                                  (SqliteInsert, sqlite.insert, sqlite.dialect())):
        def form(insert):
            return insert(ROWS).values(id=1, k="a", n=2).on_conflict_do_update(index_elements=["k"], set_={"n": 3})
        assert form(ours)._generate_cache_key() is None
        assert str(form(ours).compile(dialect=dialect)) == str(form(theirs).compile(dialect=dialect))
    assert not [warning for warning in recwarn if "caching" in str(warning.message)]
