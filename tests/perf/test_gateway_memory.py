"""The gateway's memory under the soak's steady load: does it leak, or warm up and stay?

    .venv/bin/python -m pytest tests/perf/test_gateway_memory.py -m soak -s -p no:randomly
    CARELOOP_MEMORY_MINUTES=20 CARELOOP_MEMORY_EVERY=2 ...     # (defaults) minutes of load, minutes between snapshots

The suite runs as real processes (``tests/faults/stack.py``, without the fault proxies), the gateway with its
deployed settings (rate limits, the bound of requests in flight) and with ``tests/perf/memory_probe`` on its
``PYTHONPATH``: tracemalloc traces its allocations and each ``SIGUSR1`` writes a snapshot. The load is the soak's
(``tests/faults/load.py``: 8 client actions a second, 503s retried), no faults. Printed: at each snapshot the
gateway's RSS, what tracemalloc traces, RPC replies still awaited, open files, objects; then the allocation
sites that grew most from the first snapshot (after warm-up) to the last under load, and what is left a minute
after the load stopped and its connections closed, and how much of the RSS then was free memory glibc's heap
kept (``malloc_trim`` hands it back). Figures: tests/perf/RESULTS.md ("The gateway's memory").
"""

from __future__ import annotations

import json
import os
import signal
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.load import Load
from tests.faults.stack import REPO, Stack

MINUTES = float(os.environ.get("CARELOOP_MEMORY_MINUTES", "20"))
EVERY = float(os.environ.get("CARELOOP_MEMORY_EVERY", "2")) * 60
PROBE = Path(__file__).resolve().parent / "memory_probe"


@pytest.fixture
def probed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Path]]:
    base = Path(tmp_path_factory.mktemp("memory"))
    snapshots = base / "snapshots"
    snapshots.mkdir()
    env = {"gateway": {"PYTHONPATH": f"{PROBE}:{REPO}", "CARELOOP_MEMORY_PROBE": str(snapshots)}}
    started = Stack(base, proxied=False, env=env)
    try:
        started.start()
        yield started, snapshots
    finally:
        started.close()


def ask(stack: Stack, written: Path, signum: int = signal.SIGUSR1) -> dict[str, Any]:
    """Signal the gateway's probe and wait (bounded) until it has written ``written``."""
    os.kill(stack.children()["gateway"].pid, signum)
    deadline = time.monotonic() + 180
    while not written.exists():
        assert time.monotonic() < deadline, f"no {written.name} from the gateway in 180 s"
        time.sleep(0.5)
    return json.loads(written.read_text())


def snapshot(stack: Stack, folder: Path, number: int) -> dict[str, Any]:
    return ask(stack, folder / f"snap-{number}.json")


def line(label: str, figures: dict[str, Any]) -> str:
    mib = 1024 * 1024
    heap = figures["malloc"]
    return (f"{label:<14} rss {figures['rss_kib'] / 1024:6.1f} MiB  rss-tracemalloc "
            f"{(figures['rss_kib'] * 1024 - figures['tracemalloc_overhead']) / mib:6.1f} MiB  traced "
            f"{figures['traced'] / mib:5.1f} MiB  malloc in use {heap['in_use'] / mib:5.1f} free "
            f"{heap['free'] / mib:5.1f} mmapped {heap['mmapped'] / mib:5.1f} MiB  replies awaited "
            f"{figures['reply_events']:>4}  files {figures['open_files']:>4}  objects {figures['objects']:>7}")


def growth(folder: Path, first: int, last: int, top: int = 15) -> str:
    before = tracemalloc.Snapshot.load(str(folder / f"snap-{first}.tracemalloc"))
    after = tracemalloc.Snapshot.load(str(folder / f"snap-{last}.tracemalloc"))
    out = [f"-- allocation sites, snapshot {first} -> {last} (size change, count change, size now)"]
    for stat in after.compare_to(before, "lineno")[:top]:
        frame = stat.traceback[0]
        out.append(f"{stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+8d}  {stat.size / 1024:9.1f} KiB  "
                   f"{frame.filename.split('site-packages/')[-1]}:{frame.lineno}")
    out.append(f"-- the {min(top, 5)} biggest growths with their callers")
    for stat in after.compare_to(before, "traceback")[:5]:
        out.append(f"{stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+8d}")
        out.extend(f"      {frame.filename.split('site-packages/')[-1]}:{frame.lineno}"
                   for frame in stat.traceback)
    return "\n".join(out)


@pytest.mark.perf
@pytest.mark.soak
@pytest.mark.timeout(int(MINUTES * 60 + 1200))
def test_gateway_memory_under_the_soak_load(probed: tuple[Stack, Path]) -> None:
    stack, folder = probed
    load = Load(stack, seed=61)
    load.prepare()
    rows = [("started", snapshot(stack, folder, 1))]  # tracing starts here
    print("\n" + line(*rows[0]), flush=True)
    began = time.monotonic()
    load.start(8.0)
    number = 1
    while time.monotonic() - began < MINUTES * 60:
        time.sleep(max(began + number * EVERY - time.monotonic(), 0))
        number += 1
        rows.append((f"load {(time.monotonic() - began) / 60:4.1f} min", snapshot(stack, folder, number)))
        print(line(*rows[-1]), flush=True)
    under_load = number
    load.stop()
    load.http.close()  # the client's keep-alive connections end: what they held in the gateway can go
    time.sleep(60)
    number += 1
    rows.append(("idle 1 min", snapshot(stack, folder, number)))
    print(line(*rows[-1]), flush=True)
    trim = ask(stack, folder / "trim.json", signal.SIGUSR2)
    print(f"malloc_trim: rss {trim['rss_kib_before'] / 1024:.1f} -> {trim['rss_kib_after'] / 1024:.1f} MiB", flush=True)
    ops = load.ops
    print(f"\n{len(ops)} operations ({len(ops) / (MINUTES * 60):.1f}/s), {sum(op.acked for op in ops)} acknowledged, "
          f"{sum(op.fives for op in ops)} 5xx met")
    print(growth(folder, 2, under_load))
    print(growth(folder, 2, number))
    assert sum(op.acked for op in ops) > 0
