"""Each fault once under a steady mixed load, on real processes, a private broker and a private PostgreSQL.

Bounded form (marker ``faults``, in the default test run): every scenario once with about 20 s of load, all
on one stack. ``make faults`` runs the longer form (``faults_full``: 90 s of load around each fault).
After each scenario: drain, then the invariants (tests/faults/invariants.py); the table is printed at the
end of the module. What each scenario proves: tests/faults/README.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.load import Load
from tests.faults.scenarios import SCENARIOS, Row, describe, report, run
from tests.faults.stack import Stack

ROWS: list[Row] = []


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Stack]:
    started = Stack(Path(tmp_path_factory.mktemp("faults")))
    try:
        started.start()
        yield started
    finally:
        started.close()
        if ROWS:
            reporter = request.config.pluginmanager.get_plugin("terminalreporter")
            text = "\nfault suite (logs: " + str(started.logs) + ")\n" + report(ROWS)
            if reporter is not None:
                reporter.write_line(text)
            else:
                print(text)


@pytest.fixture(scope="module")
def load(stack: Stack) -> Load:
    made = Load(stack)
    made.prepare()
    return made


def _prove(stack: Stack, load: Load, index: int, seconds: float) -> None:
    row = run(stack, load, SCENARIOS[index], seconds)
    ROWS.append(row)
    assert row.acknowledged > 0, f"nothing acknowledged under {row.scenario}"
    assert row.verdict.clean, f"{describe(row)}\n{stack.log_tails()}"


@pytest.mark.faults
@pytest.mark.timeout(300)
@pytest.mark.parametrize("index", range(len(SCENARIOS)), ids=[scenario.name for scenario in SCENARIOS])
def test_nothing_acknowledged_is_lost_or_doubled_under(stack: Stack, load: Load, index: int) -> None:
    _prove(stack, load, index, seconds=20)


@pytest.mark.faults_full
@pytest.mark.timeout(600)
@pytest.mark.parametrize("index", range(len(SCENARIOS)), ids=[scenario.name for scenario in SCENARIOS])
def test_nothing_acknowledged_is_lost_or_doubled_under_long_load(stack: Stack, load: Load, index: int) -> None:
    _prove(stack, load, index, seconds=90)
