"""Backup drill: dump each service's PostgreSQL database, restore it, and prove the copy is the same.

    python -m deploy.backup_drill                       # every <SERVICE>_DATABASE_URL in the environment
    python -m deploy.backup_drill --database points=postgresql://...  [--database records=...]
    python -m deploy.backup_drill --replace ...         # drop the originals and restore them in place
                                                        # (a staging copy only: writers must be stopped)

For each database: the figures below are read in one REPEATABLE READ snapshot, and ``pg_dump --snapshot``
dumps that very snapshot (so writes going on meanwhile cannot make the comparison lie); the dump is restored
with ``pg_restore`` into a scratch database ``<name>_drill`` beside it (by default; dropped afterwards) or
in place of the original (``--replace``); the same figures are read from the restored copy and compared.
Figures: the row count of every table; points: the reconciliation (accounts checked, mismatches, points
outstanding, stored value principal and bonus: ``balance = sum of postings``); records: the audit trail's
rows by action and outcome. Exit status 0 when every database matches and reconciles, 1 otherwise; the
table goes to standard output. deploy/RUNBOOK.md tells the SRE to run it monthly.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.orm import Session

SERVICES = ("members", "points", "records", "notifications", "gateway")
RECONCILE_BATCH = 1000


@dataclass
class Outcome:
    service: str
    before: dict[str, Any]
    after: dict[str, Any]
    dump_bytes: int
    restored_as: str
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences


def libpq_url(url: str) -> str:
    """The SQLAlchemy URL as pg_dump and pg_restore take it (no ``+driver``)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def figures(connection: Connection, service: str) -> dict[str, Any]:
    """What must be the same in a copy: every table's rows, and the service's own checks."""
    found: dict[str, Any] = {}
    for table in sorted(inspect(connection).get_table_names()):
        found[f"rows {table}"] = connection.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one()
    if service == "points":
        found.update(reconciliation(connection))
    if service == "records":
        for action, outcome, count in connection.execute(text(
                "SELECT action, outcome, count(*) FROM audit_trail GROUP BY action, outcome ORDER BY 1, 2")):
            found[f"audit {action} {outcome}"] = count
    return found


def reconciliation(connection: Connection) -> dict[str, Any]:
    """points' own reconciliation (services/points/reconciliation.py) over every account and wallet."""
    from services.points.reconciliation import Report, check_points, check_wallets

    session = Session(bind=connection)
    total = Report()
    for check in (check_points, check_wallets):
        after = None
        while True:
            report, after = check(session, after, RECONCILE_BATCH)
            total.merge(report)
            if after is None:
                break
    return {"reconciliation accounts checked": total.checked, "reconciliation mismatches": total.mismatch_count,
            "points outstanding": total.points_outstanding, "wallet principal minor": total.wallet_principal_minor,
            "wallet bonus minor": total.wallet_bonus_minor}


def _admin(url: str, sql: str) -> None:
    """A statement that cannot run in a transaction (CREATE/DROP DATABASE), on the server's postgres database."""
    engine = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(sql))
    finally:
        engine.dispose()


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")


def drill_one(service: str, url: str, workdir: Path, replace: bool = False) -> Outcome:
    dump = workdir / f"{service}.dump"
    engine = create_engine(url, isolation_level="REPEATABLE READ")
    try:
        with engine.connect() as connection:
            snapshot = connection.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            _run(["pg_dump", "--format=custom", "--no-owner", f"--snapshot={snapshot}", f"--file={dump}",
                  libpq_url(url)])
            before = figures(connection, service)
            connection.rollback()
    finally:
        engine.dispose()

    original = make_url(url).database
    target = original if replace else f"{original}_drill_{uuid.uuid4().hex[:6]}"
    if replace:
        _admin(url, f'DROP DATABASE "{original}" WITH (FORCE)')
    _admin(url, f'CREATE DATABASE "{target}"')
    restored_url = make_url(url).set(database=target).render_as_string(hide_password=False)
    try:
        _run(["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={libpq_url(restored_url)}", str(dump)])
        engine = create_engine(restored_url, isolation_level="REPEATABLE READ")
        try:
            with engine.connect() as connection:
                after = figures(connection, service)
        finally:
            engine.dispose()
    finally:
        if not replace:
            _admin(url, f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
    outcome = Outcome(service, before, after, dump.stat().st_size, target)
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            outcome.differences.append(f"{key}: {before.get(key)} before, {after.get(key)} restored")
    if after.get("reconciliation mismatches"):
        outcome.differences.append(f"the restored ledgers do not reconcile: {after['reconciliation mismatches']}")
    return outcome


def drill(databases: dict[str, str], replace: bool = False) -> list[Outcome]:
    with tempfile.TemporaryDirectory(prefix="careloop-drill-") as workdir:
        return [drill_one(service, url, Path(workdir), replace) for service, url in databases.items()]


def table(outcomes: list[Outcome]) -> str:
    lines = ["| database | dump | tables | rows | checks | result |", "| --- | ---: | ---: | ---: | --- | --- |"]
    for outcome in outcomes:
        rows = {key: value for key, value in outcome.after.items() if key.startswith("rows ")}
        checks = ", ".join(f"{key} {value}" for key, value in outcome.after.items() if not key.startswith("rows "))
        lines.append(f"| {outcome.service} | {outcome.dump_bytes:,} B | {len(rows)} | {sum(rows.values()):,} | "
                     f"{checks or '-'} | {'same' if outcome.ok else '; '.join(outcome.differences)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", action="append", default=[], metavar="SERVICE=URL")
    parser.add_argument("--replace", action="store_true", help="drop the originals and restore them in place")
    args = parser.parse_args(argv)
    databases = dict(item.split("=", 1) for item in args.database) or {
        service: os.environ[f"{service.upper()}_DATABASE_URL"] for service in SERVICES
        if os.environ.get(f"{service.upper()}_DATABASE_URL")}
    if not databases:
        parser.error("no database: --database SERVICE=URL or <SERVICE>_DATABASE_URL in the environment")
    outcomes = drill(databases, replace=args.replace)
    print(table(outcomes))
    return 0 if all(outcome.ok for outcome in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
