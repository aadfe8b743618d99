"""Re-encrypt a service's personal data under the active key: the second half of a key rotation.

    python -m services.kit.rotate records                 # RECORDS_DATABASE_URL or var/records.db
    python -m services.kit.rotate members --url postgresql+psycopg2://...
    python -m services.kit.rotate records --check          # count values still under an old key

Rotating a key: (1) add the new key to ``CARELOOP_DATA_KEYS`` and name it in ``CARELOOP_DATA_KEY_ID``;
(2) restart the services, so new values use it (old ones stay readable); (3) run this command, which
walks every table of the service's models that has ``Encrypted`` columns, in batches, re-encrypting
each value not under the active key (``kit.crypto.rotate_column``, compare-and-set, so a value the
running service rewrites meanwhile is never overwritten); (4) ``--check`` says 0; (5) remove the old
key. The command can be stopped and run again at any time: what is done stays done.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

from sqlalchemy import MetaData, Table, Text, func, select

from services.kit.crypto import encrypted_columns, keyring, rotate_column
from services.kit.db import Store, database_url_from_env


def service_metadata(service: str) -> MetaData:
    """The metadata of a service's own tables (``services/<service>/models.py``'s ``Base``; the gateway's too)."""
    module = importlib.import_module("gateway.models" if service == "gateway" else f"services.{service}.models")
    return module.Base.metadata


def encrypted_tables(metadata: MetaData) -> list[Table]:
    """The tables with encrypted columns, in a stable order; each must have a one-column primary key."""
    tables = [table for table in metadata.sorted_tables if encrypted_columns(table)]
    for table in tables:
        if len(table.primary_key.columns) != 1:
            raise ValueError(f"{table.name}: encrypted tables need a one-column primary key to be rotated")
    return tables


def rotate(store: Store, metadata: MetaData, batch: int = 500) -> dict[str, int]:
    """Re-encrypt every value not under the active key; rows rewritten per table."""
    return {table.name: rotate_column(store, table, batch=batch) for table in encrypted_tables(metadata)}


def stale(store: Store, metadata: MetaData) -> dict[str, int]:
    """How many values of each table are still under another key than the active one."""
    prefix = f"v1.{keyring().active}."
    counts = {}
    with store.transaction() as session:
        for table in encrypted_tables(metadata):
            total = 0
            for name, _context in encrypted_columns(table):
                raw = table.c[name].cast(Text)
                total += session.execute(select(func.count()).select_from(table).where(
                    raw.is_not(None), ~raw.startswith(prefix, autoescape=True))).scalar_one()
            counts[table.name] = total
    return counts


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.kit.rotate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("service")
    parser.add_argument("--url", help="database URL (default: <SERVICE>_DATABASE_URL or var/<service>.db)")
    parser.add_argument("--batch", type=int, default=500, help="rows per transaction (default 500)")
    parser.add_argument("--check", action="store_true", help="only count values still under an old key")
    args = parser.parse_args(argv)
    store = Store(args.url or database_url_from_env(args.service), pool_size=1)
    try:
        metadata = service_metadata(args.service)
        result: dict[str, Any] = stale(store, metadata) if args.check else rotate(store, metadata, args.batch)
    finally:
        store.dispose()
    what = "values under an old key" if args.check else "rows re-encrypted"
    for table, count in result.items():
        print(f"{table}: {count} {what}")
    print(f"active key: {keyring().active}")
    return 1 if args.check and any(result.values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
