"""The fault suite shares one stack per module; ``faults_full`` runs only under ``make faults``."""

from __future__ import annotations

import os
from typing import Any

import pytest


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from tests.faults.scenarios import ROWS, report

    if ROWS:
        terminalreporter.section("fault suite")
        terminalreporter.write_line(report(ROWS))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("CARELOOP_FAULTS_FULL"):
        return
    kept = [item for item in items if item.get_closest_marker("faults_full") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept
