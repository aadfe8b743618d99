"""The fault suite shares one stack per module; ``faults_full`` runs only under ``make faults``."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("CARELOOP_FAULTS_FULL"):
        return
    kept = [item for item in items if item.get_closest_marker("faults_full") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept
