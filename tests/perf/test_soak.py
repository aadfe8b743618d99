"""The soak: the suite as real processes under a steady mixed load for an hour, a fault every 5 minutes.

``make soak`` (``CARELOOP_SOAK_MINUTES`` to shorten; ``CARELOOP_SOAK_FAULT_EVERY`` minutes between faults,
default 5). The stack, the load, the faults and the invariants are the fault suite's (tests/faults/): the
faults cycle through its scenarios, each in the middle of its window. Printed: each process's RSS at the
start and at the end (from /proc; a process restarted by a fault is a new one), for each fault the p50/p99
latency of the acknowledged operations started in the minute before it and in the minute after it and the
time until /ready answered again, and at the end the invariants over everything the load did.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.invariants import check, drain
from tests.faults.load import Load, percentile
from tests.faults.scenarios import SCENARIOS
from tests.faults.stack import Stack

MINUTES = float(os.environ.get("CARELOOP_SOAK_MINUTES", "60"))
EVERY = float(os.environ.get("CARELOOP_SOAK_FAULT_EVERY", "5")) * 60


@pytest.fixture
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    started = Stack(Path(tmp_path_factory.mktemp("soak")))
    try:
        started.start()
        yield started
    finally:
        started.close()


def _window(load: Load, start: float, end: float) -> str:
    latencies = [op.latency * 1000 for op in load.ops if op.acked and start <= op.started < end]
    return f"n={len(latencies):>4} p50={percentile(latencies, 0.5):>6.0f} ms p99={percentile(latencies, 0.99):>6.0f} ms"


@pytest.mark.perf
@pytest.mark.soak
@pytest.mark.timeout(int(MINUTES * 60 + 1800))
def test_soak_a_fault_every_five_minutes(stack: Stack) -> None:
    load = Load(stack, seed=60)
    load.prepare()
    rss_start = stack.rss_kib()
    began = time.time()
    end = began + MINUTES * 60
    load.start(8.0)
    faults: list[tuple[str, float, float]] = []  # name, injected at (wall clock), seconds to /ready again
    dead_expected: dict[str, int] = {}
    pending_after = []
    number = 0
    while True:
        due = began + EVERY / 2 + number * EVERY
        if due + 60 > end:
            break
        time.sleep(max(due - time.time(), 0))
        scenario = SCENARIOS[number % len(SCENARIOS)]
        injected = time.time()
        scenario.inject(stack)
        recover = stack.wait_ready(300) + (time.time() - injected)
        faults.append((scenario.name, injected, recover))
        print(f"{time.strftime('%H:%M:%S')} fault {number + 1}: {scenario.name}, ready again after {recover:.1f} s",
              flush=True)
        for service, count in scenario.dead_letters.items():
            dead_expected[service] = dead_expected.get(service, 0) + count
        if scenario.after is not None:
            pending_after.append(scenario)
        number += 1
        if pending_after and scenario.name == "two replicas each":  # a minute with replicas, then back to one
            time.sleep(60)
            pending_after.pop().after(stack)
    time.sleep(max(end - time.time(), 0))
    load.stop()
    drained = drain(stack, 300)
    rss_end = stack.rss_kib()
    verdict = check(stack, load.ops, load.ops, dead_expected)
    killed = Counter(SCENARIOS[index % len(SCENARIOS)].kills for index in range(number))
    for name, count in stack.restarts().items():
        if count > killed[name]:  # processes survive the broker and the database going away (issue 15)
            verdict.problems.append(f"process {name} restarted {count} times, killed {killed[name]} times")
    for scenario in pending_after:
        scenario.after(stack)

    ops = load.ops
    acked = sum(op.acked for op in ops)
    print(f"\nsoak: {MINUTES:g} min, {len(ops)} operations ({len(ops) / (MINUTES * 60):.1f}/s), {acked} acknowledged, "
          f"{sum(op.fives for op in ops)} 5xx answers met, drained in {drained:.0f} s, restarts {stack.restarts()}")
    print(f"{'process':<16} {'RSS start MiB':>14} {'RSS end MiB':>12}")
    for name in sorted(set(rss_start) | set(rss_end)):
        print(f"{name:<16} {rss_start.get(name, 0) / 1024:>14.1f} {rss_end.get(name, 0) / 1024:>12.1f}")
    print(f"{'fault':<22} {'recover s':>9}  minute before                       minute after")
    for name, injected, recover in faults:
        print(f"{name:<22} {recover:>9.1f}  {_window(load, injected - 60, injected)}  "
              f"{_window(load, injected, injected + 60)}")
    print(f"invariants: lost {len(verdict.lost)}, duplicated {len(verdict.duplicated)}, "
          f"problems {len(verdict.problems)}")
    for item in [*verdict.lost, *verdict.duplicated, *verdict.problems][:20]:
        print("  " + item)
    assert acked > 0
    assert verdict.clean, stack.log_tails()
