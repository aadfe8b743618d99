"""The visit audit's migrations: points' outcome table is filled from the visits that earned before it
existed, and records' and points' migrated tables match their models (SQLite, a database of its own)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from services.kit.migrate import SERVICES_DIR, alembic_config, migrations_dir, upgrade
from services.points import outcomes
from services.points.models import Base as PointsBase
from services.records.models import Base as RecordsBase

AUDIT_TABLES = {"points_visit_outcomes", "points_visit_outcomes_since", "visit_audits", "visit_audit_findings", "visits"}


def test_outcomes_are_made_for_visits_that_earned_before_the_upgrade(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'points.db'}"
    command.upgrade(alembic_config(SERVICES_DIR / "kit" / "migrations", url), "head")
    command.upgrade(alembic_config(migrations_dir("points"), url), "pts0002")
    member, other = uuid.uuid4(), uuid.uuid4()
    engine = create_engine(url)
    with engine.begin() as connection:
        for account in (member, other):
            connection.execute(text("INSERT INTO points_accounts (member_id, balance, earned_total, created_at, "
                                    "updated_at) VALUES (:m, 0, 0, '2026-11-01 00:00:00', '2026-11-01 00:00:00')"),
                               {"m": account.hex})
        postings = [(1, member, "earn", 300, 30000, "visit:V1:0", None), (2, other, "earn", 50, None, "visit:V1:1", None),
                    (3, member, "reverse", -100, None, "reverse:1:100", 1), (4, member, "earn", 20, None, "x", None)]
        for number, account, kind, points, basis, key, reverses in postings:
            connection.execute(text(
                "INSERT INTO points_postings (id, member_id, kind, rule, points, balance_after, dedupe_key, source, "
                "source_ref, operator, basis_minor, reverses_id, created_at) VALUES (:i, :m, :k, 'spend', :p, 0, :d, "
                ":s, :r, 'test', :b, :v, '2026-11-02 00:00:00')"),
                {"i": number, "m": account.hex, "k": kind, "p": points, "d": key, "b": basis, "v": reverses,
                 "s": "visit" if number < 4 else "feedback", "r": "V1" if number < 4 else "F1"})
    upgrade("points", url)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT visit_id, member_id, state, earned_points, reversed_points, bill_minor "
                                       "FROM points_visit_outcomes")).all()
        with Session(connection) as session:  # points began noting at the upgrade, not before
            before, after = outcomes.effects(session, [
                {"visit_id": "V2", "completed_at": datetime(2026, 1, 1, tzinfo=UTC)},
                {"visit_id": "V3", "completed_at": datetime.now(UTC) + timedelta(minutes=1)}])
    engine.dispose()
    assert [tuple(row) for row in rows] == [("V1", member.hex, "earned", 350, 100, 30000)]
    assert (before["seen"], before["noting"], after["seen"], after["noting"]) == (False, False, False, True)


def migrated_differences(tmp_path: Path, service: str, metadata: Any, tables: set[str]) -> list[Any]:
    """What ``service``'s migrations, run on a new SQLite file, build otherwise than ``metadata`` for ``tables``."""
    url = f"sqlite:///{tmp_path / f'{service}.db'}"
    upgrade(service, url)
    engine = create_engine(url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    engine.dispose()
    return [d for d in differences if any(table in repr(d) for table in tables)]


def test_the_audit_tables_match_their_models(tmp_path: Path):
    for service, metadata in (("points", PointsBase.metadata), ("records", RecordsBase.metadata)):
        ours = migrated_differences(tmp_path, service, metadata, AUDIT_TABLES)
        assert not ours, (service, ours)
