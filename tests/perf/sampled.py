"""Where a running service's CPU goes, sampled by py-spy (a development requirement) while a benchmark runs.

cProfile (``CARELOOP_STACK_PROFILE``) charges a green thread's waits to whatever frame switched away, so under
eventlet its cumulative times mix CPU with waiting; py-spy reads the process's stack from outside, a number of
times a second, and keeps only the samples where the process's thread was not asleep. Not asleep is not always on
a core: a thread woken and waiting for one counts too (seen: a service at 11.6 % of a core by ``/proc`` was "active"
in 18 % of its samples at 20 flows/s, with the hub's ``epoll`` return at the top of a third of them), and on a
saturated machine preempted threads count wherever they were stopped. Read the shares as where the time goes
between waits, compare them between runs of one rate, and sample at a rate the cores carry.

``Sampler(folder).start({name: pid}, seconds)`` samples each process for ``seconds`` (``py-spy record --format
raw``, one ``<name>.txt`` a process, ``--nonblocking``: the process is never paused); ``wait()`` until they are
written. ``python -m tests.perf.sampled <folder> [anchor]`` prints, per process, the share of its samples by the
library running at the top of the stack, by our own functions (inclusive), and by the line at the top: with an
``anchor`` (a function's name), only what ran under it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

RATE = 50
"""Samples a second: py-spy falls behind on two busy cores above ~70 with five processes sampled at once."""

_FRAME = re.compile(r"(?P<function>.*) \((?P<file>.*?)(?::\d+)?\)$")


class Sampler:
    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.running: list[tuple[subprocess.Popen[bytes], Any]] = []  # each py-spy and its log, closed by wait()

    def start(self, pids: dict[str, int], seconds: float) -> None:
        spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
        if spy is None:
            raise RuntimeError("py-spy is not installed (requirements-dev.txt; scripts/bootstrap.sh installs it)")
        self.folder.mkdir(parents=True, exist_ok=True)
        for name, pid in pids.items():
            log = (self.folder / f"{name}.log").open("wb")
            self.running.append((subprocess.Popen(
                [spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", str(RATE),
                 "--nonblocking", "--format", "raw", "-o", str(self.folder / f"{name}.txt")],
                stdout=subprocess.DEVNULL, stderr=log), log))

    def wait(self, timeout: float = 120) -> None:
        for process, log in self.running:
            try:
                process.wait(timeout)
            finally:
                log.close()
        self.running = []


def _stacks(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            stacks.append((stack.split(";"), int(count)))
    return stacks


def _where(frame: str) -> tuple[str, str]:
    """(function, file) of a py-spy frame."""
    found = _FRAME.match(frame.strip())
    return (found["function"], found["file"]) if found else (frame, "")


def report(path: Path, anchor: str | None = None, top: int = 15) -> list[str]:
    stacks = _stacks(path)
    total = sum(count for _stack, count in stacks) or 1
    libraries, ours, lines = Counter(), Counter(), Counter()
    under = 0
    for stack, count in stacks:
        if anchor is not None:
            at = next((i for i, frame in enumerate(stack) if _where(frame)[0].endswith(anchor)), None)
            if at is None:
                continue
            stack = stack[at:]
        under += count
        _function, file = _where(stack[-1])
        libraries[file.split("/")[0] if "/" in file else f"stdlib {file}"] += count
        lines[stack[-1].strip()] += count
        for name in {f"{fn} ({fl})" for fn, fl in map(_where, stack) if fl.startswith(("services/", "gateway/"))}:
            ours[name] += count
    out = [f"{path.stem}: {total} samples" + (f", {under / total:.1%} under {anchor}" if anchor else "")]
    for title, counter in (("at the top, by library", libraries), ("ours, inclusive", ours),
                           ("at the top, by line", lines)):
        out.append(f"  {title}:")
        out += [f"    {count / total:6.1%}  {name[:160]}" for name, count in counter.most_common(top)]
    return out


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    for sampled in sorted(folder.glob("*.txt")):
        print("\n".join(report(sampled, sys.argv[2] if len(sys.argv) > 2 else None)))
