"""Every service's migrations, run from nothing, build exactly the tables its models declare (all of them, not
only the newest: revisions written side by side on branches and chained at merge must still add up)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from tests.integration.test_visit_audit_migrations import migrated_differences


@pytest.mark.parametrize("service", ["members", "points", "records", "notifications", "interfaces", "gateway"])
def test_the_migrations_build_the_models(tmp_path: Path, service: str) -> None:
    module = "gateway.models" if service == "gateway" else f"services.{service}.models"
    metadata = importlib.import_module(module).Base.metadata
    assert not migrated_differences(tmp_path, service, metadata, set(metadata.tables)), service
