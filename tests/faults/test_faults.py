"""Each fault once under a steady mixed load, on real processes, a private broker and a private PostgreSQL.

Bounded form (marker ``faults``, in the default test run): every scenario once with about 15 s of load, all
on one stack. ``make faults`` runs the longer form (``faults_full``: 90 s of load around each fault).
After each scenario: drain, then the invariants (tests/faults/invariants.py); the table is printed at the
end of the module. What each scenario proves: tests/faults/README.md.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.invariants import check, drain
from tests.faults.load import RUN, Load, Op
from tests.faults.scenarios import ROWS, SCENARIOS, describe, run
from tests.faults.stack import Stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    started = Stack(Path(tmp_path_factory.mktemp("faults")))
    try:
        started.start()
        yield started
    finally:
        started.close()


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
    _prove(stack, load, index, seconds=15)


@pytest.mark.faults_full
@pytest.mark.timeout(600)
@pytest.mark.parametrize("index", range(len(SCENARIOS)), ids=[scenario.name for scenario in SCENARIOS])
def test_nothing_acknowledged_is_lost_or_doubled_under_long_load(stack: Stack, load: Load, index: int) -> None:
    _prove(stack, load, index, seconds=90)


@pytest.mark.faults
@pytest.mark.timeout(300)
def test_the_checks_report_a_bill_and_a_refund_that_did_not_happen(stack: Stack, load: Load) -> None:
    """The invariants are not vacuous: told of an acknowledged bill that never reached records and of an
    acknowledged refund whose visit still has its points, they report both lost."""
    bill_id = f"HIS-{RUN}-checked"
    load.enrol()
    member = load.members[-1]
    sent = load._send("bill", "POST", "/v1/webhooks/bills", {
        "bill_id": bill_id, "member_id": member, "branch": "SH01", "currency": "CNY",
        "items": [{"category": "cleaning", "code": "C1", "amount_minor": 300_00}],
        "payments": [{"method": "card", "amount_minor": 300_00}]}, key=bill_id, signed=True,
        data={"bill_id": bill_id, "member_id": member})
    assert sent.acked, sent
    drain(stack)
    ghost = Op("bill", "ghost", time.time(), {"bill_id": f"HIS-{RUN}-never-sent"}, 200, True)
    unreversed = Op("refund", f"R-{bill_id}", time.time(), {"bill_id": bill_id}, 200, True)
    verdict = check(stack, [ghost, unreversed], load.ops, {})
    assert "bill ghost: acknowledged, no visit in records" in verdict.lost
    assert [line for line in verdict.lost if line.startswith(f"refund R-{bill_id}: acknowledged, visit ")
            and line.endswith(" keeps 310 points")], verdict.lost  # 1 a yuan and 10 for the visit, standard tier
