"""Big points data sets for the benchmarks, written with PostgreSQL COPY (hundreds of thousands of rows a
second, streamed in chunks so the generator itself stays small).

A data set is ``accounts`` members with ``lots_per_account`` lots of ``LOT_POINTS`` each, consistent in
every table the ledger keeps (account balance = sum of postings = sum of open lots; one earn posting and
one lot move per lot), all lots expiring on ``EXPIRES_ON``.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from datetime import date

import psycopg2

LOT_POINTS = 10
EXPIRES_ON = date(2025, 12, 31)
CHUNK_ROWS = 100_000
NOW = "2025-03-01 02:00:00+00"


def dsn(url: str) -> str:
    """A psycopg2 DSN from a SQLAlchemy URL."""
    return url.replace("postgresql+psycopg2://", "postgresql://")


def _copy(cursor: psycopg2.extensions.cursor, table: str, columns: str, rows: Iterator[str]) -> None:
    buffer, count = io.StringIO(), 0
    sql = f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT text)"
    for row in rows:
        buffer.write(row)
        count += 1
        if count % CHUNK_ROWS == 0:
            buffer.seek(0)
            cursor.copy_expert(sql, buffer)
            buffer = io.StringIO()
    if buffer.tell():
        buffer.seek(0)
        cursor.copy_expert(sql, buffer)


def fill(url: str, accounts: int, lots_per_account: int, members: bool = False) -> list[str]:
    """Write the data set into the (freshly migrated, empty) points database at ``url``; returns the
    member ids. With ``members``, also points' copies of the members (so RPCs find them)."""
    member_ids = [str(uuid.uuid4()) for _ in range(accounts)]
    balance = LOT_POINTS * lots_per_account
    # COPY cannot run under the green wait callback (psycogreen): block while loading, then restore it
    green = psycopg2.extensions.get_wait_callback()
    psycopg2.extensions.set_wait_callback(None)
    connection = psycopg2.connect(dsn(url))
    try:
        with connection, connection.cursor() as cursor:
            if members:
                _copy(cursor, "points_members", "member_id, home_branch, tier, status, enrolled_at, updated_at",
                      (f"{m}\tSH01\tstandard\tactive\t{NOW}\t{NOW}\n" for m in member_ids))
            if lots_per_account:
                _copy(cursor, "points_accounts", "member_id, balance, earned_total, created_at, updated_at",
                      (f"{m}\t{balance}\t{balance}\t{NOW}\t{NOW}\n" for m in member_ids))

            def numbered(make: Callable[[int, str, int], str]) -> Iterator[str]:
                number = 0
                for member in member_ids:
                    for nth in range(lots_per_account):
                        number += 1
                        yield make(number, member, nth)

            _copy(cursor, "points_postings", "id, member_id, kind, rule, points, balance_after, source, source_ref, "
                  "operator, created_at, expires_on", numbered(
                      lambda n, m, k: f"{n}\t{m}\tearn\tspend\t{LOT_POINTS}\t{LOT_POINTS * (k + 1)}\tvisit\tV{n}\t"
                                      f"service:perf\t{NOW}\t{EXPIRES_ON}\n"))
            _copy(cursor, "points_lots", "id, member_id, posting_id, kind, points, remaining, expires_on, warned, "
                  "created_at", numbered(
                      lambda n, m, k: f"{n}\t{m}\t{n}\tearn\t{LOT_POINTS}\t{LOT_POINTS}\t{EXPIRES_ON}\tf\t{NOW}\n"))
            _copy(cursor, "points_lot_moves", "id, lot_id, posting_id, points",
                  numbered(lambda n, m, k: f"{n}\t{n}\t{n}\t{LOT_POINTS}\n"))
            for table in ("points_postings", "points_lots", "points_lot_moves"):
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                               f"(SELECT coalesce(max(id), 1) FROM {table}))")
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    finally:
        connection.close()
        psycopg2.extensions.set_wait_callback(green)
    return member_ids
