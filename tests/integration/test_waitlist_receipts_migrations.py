"""rec0004 (the waitlist) and not0004 (reactivation, do-not-contact) build exactly the tables of the models."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from services.kit.migrate import upgrade
from services.notifications.models import Base as NotificationsBase
from services.records.models import Base as RecordsBase


@pytest.mark.parametrize(("service", "metadata", "tables"), [
    ("records", RecordsBase.metadata, {"waitlist_entries", "waitlist_offers"}),
    ("notifications", NotificationsBase.metadata, {"preferences", "recalls"}),
])
def test_the_new_tables_match_their_models(tmp_path: Path, service, metadata, tables):
    url = f"sqlite:///{tmp_path / f'{service}.db'}"
    upgrade(service, url)
    engine = create_engine(url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    engine.dispose()
    ours = [d for d in differences if any(table in repr(d) for table in tables)]
    assert not ours, (service, ours)
