"""rec0004 (the waitlist) and not0004 (reactivation, do-not-contact) build exactly the tables of the models."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.notifications.models import Base as NotificationsBase
from services.records.models import Base as RecordsBase
from tests.integration.test_visit_audit_migrations import migrated_differences


@pytest.mark.parametrize(("service", "metadata", "tables"), [
    ("records", RecordsBase.metadata, {"waitlist_entries", "waitlist_offers"}),
    ("notifications", NotificationsBase.metadata, {"preferences", "recalls"}),
])
def test_the_new_tables_match_their_models(tmp_path: Path, service, metadata, tables):
    assert not migrated_differences(tmp_path, service, metadata, tables), service
