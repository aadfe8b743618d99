"""``python -m tests.perf.register_copy [ROWS]``: how fast PostgreSQL itself can put ROWS members (default 1,000,000)
into members' own tables, beside COPY of plain rows into a table of text columns (issue 19's "physical limit").

Without the services (no check, no encryption in Python, no RabbitMQ): rows shaped as members' commit writes them
(random UUIDs, 40-hex blind indexes, sealed personal fields as text, a batch's time and branch) are generated in this
process, then timed by ``COPY`` alone into, in a scratch database:

- ``plain``: six text columns, no index — what ``tests/perf/test_import_perf.py`` calls COPY;
- ``members`` as ``services.members.models`` declares it (every index and constraint), twice;
- the same table without its secondary indexes, then with its primary key only: what the indexes cost.

``tests/perf/test_import_perf.py`` measures the same against the very rows a commit wrote, at the benchmark's size;
this module reaches sizes the end-to-end benchmark takes an hour for. Figures: ``tests/perf/RESULTS.md``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import secrets
import sys
import time
import uuid

import psycopg2
import psycopg2.extensions
from sqlalchemy import create_engine

from services.members.models import Base
from tests.harness import scratch_database

SCRATCH = "cl_perf_register_copy"
COLUMNS = ("id", "card_number", "referral_code", "full_name", "name_index", "name_birth_index", "phone", "phone_index",
           "birth_date", "birth_mmdd", "gender", "preferred_language", "consents_updated_at", "home_branch", "status",
           "tier", "source", "enrolled_at", "updated_at", "version", "consent_sms", "consent_email", "consent_wechat",
           "consent_line", "consent_marketing")
DROPS = (("without secondary indexes", "DO $$DECLARE r record; BEGIN FOR r IN SELECT indexname FROM pg_indexes "
          "WHERE tablename = 'members' AND indexname LIKE 'ix_%' LOOP EXECUTE 'DROP INDEX ' || r.indexname; END LOOP; END$$"),
         ("primary key only", "ALTER TABLE members DROP CONSTRAINT uq_members_card_number, DROP CONSTRAINT "
          "uq_members_referral_code, DROP CONSTRAINT uq_members_phone_index, DROP CONSTRAINT uq_members_document_index, "
          "DROP CONSTRAINT fk_members_referred_by_id_members, DROP CONSTRAINT fk_members_merged_into_id_members"))


def sealed() -> str:
    """A sealed personal field as the kit stores one (``v1.<key>.<base64>``), of a typical length."""
    return "v1.k1." + secrets.token_urlsafe(48)


def generate(rows: int) -> tuple[str, str]:
    """(plain CSV rows, members CSV rows)."""
    plain, members = io.StringIO(), io.StringIO()
    plain_rows, member_rows = csv.writer(plain), csv.writer(members)
    at = "2026-12-07T00:00:00Z"
    for n in range(rows):
        plain_rows.writerow([f"张三{n}", f"138{n:08d}", "1980-01-02", "SH01", "", f"C{n}"])
        member_rows.writerow([uuid.uuid4(), f"C{n:09d}", f"R{n:09d}", sealed(), secrets.token_hex(20),
                              secrets.token_hex(20), sealed(), secrets.token_hex(20), sealed(), "01-02", "undisclosed",
                              "zh-Hans", at, "SH01", "active", "standard", "import", at, at, 1, "f", "f", "f", "f", "f"])
    return plain.getvalue(), members.getvalue()


def timed_copy(cursor: psycopg2.extensions.cursor, statement: str, data: str) -> float:
    started = time.perf_counter()
    cursor.copy_expert(statement, io.StringIO(data))
    return time.perf_counter() - started


def main(rows: int) -> None:
    with scratch_database(SCRATCH) as url:
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))
        Base.metadata.create_all(engine, tables=[Base.metadata.tables["members"]])
        engine.dispose()
        with contextlib.closing(psycopg2.connect(url)) as connection:
            connection.autocommit = True
            plain, members = generate(rows)
            into_members = f"COPY members ({', '.join(COLUMNS)}) FROM STDIN WITH (FORMAT csv)"
            with connection.cursor() as cursor:
                cursor.execute("CREATE TABLE plain (a text, b text, c text, d text, e text, f text)")
                base = timed_copy(cursor, "COPY plain FROM STDIN WITH (FORMAT csv)", plain)
                print(f"{rows:,} rows; COPY plain (6 text columns, no index) {rows / base:11,.0f} rows/s {base:8.2f} s")
                for label, ddl in (("every index and constraint", None), ("every index and constraint, again", None),
                                   *DROPS):
                    cursor.execute("TRUNCATE members")
                    if ddl:
                        cursor.execute(ddl)
                    seconds = timed_copy(cursor, into_members, members)
                    print(f"  COPY members, {label:34} {rows / seconds:11,.0f} rows/s {seconds:8.2f} s "
                          f"= {seconds / base:5.1f}x plain")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
