"""Keeping the local suite's processes running: a process that dies is started again, with backoff.

``make run`` starts every service and the gateway as a child process (``deploy.local.run``); when one of
them exits — a crash, a SIGKILL, an out-of-memory kill — the ``Supervisor`` starts it again after a delay
that begins at 1 s and doubles with each quick death up to 30 s, and goes back to 1 s once the process
had run for a minute. Each death and restart is one line on the terminal and in ``var/log/runner.log``;
the process's own output goes on into ``var/log/<name>.log``. Stopping (Ctrl-C, SIGTERM, ``make stop``)
stops every child and restarts none.

It is plain ``subprocess`` and signals, no eventlet: the supervisor outlives anything its children do.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

INITIAL_DELAY = 1.0
MAX_DELAY = 30.0
HEALTHY_AFTER = 60.0
"""A process that ran this long before it died is restarted after ``INITIAL_DELAY`` again."""


@dataclass
class Child:
    """One supervised process: how to start it, and its restart history."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    log_path: Path | None = None
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    restart_at: float | None = None  # when a dead process is due to start again
    delay: float = 0.0  # the delay used for the last restart (0 before the first)
    restarts: int = 0
    history: list[tuple[float, float]] = field(default_factory=list)  # (died at, restarted at) per restart

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Supervisor:
    """Starts ``children``, restarts any that exits (with backoff), stops them all on ``stop``."""

    def __init__(self, children: Sequence[Child], *, cwd: Path | None = None, runner_log: Path | None = None,
                 pid_dir: Path | None = None, out: IO[str] | None = None, initial_delay: float = INITIAL_DELAY,
                 max_delay: float = MAX_DELAY, healthy_after: float = HEALTHY_AFTER,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.children = {child.name: child for child in children}
        self.cwd = cwd
        self.runner_log = runner_log
        self.pid_dir = pid_dir
        self.out = out if out is not None else sys.stdout
        self.initial_delay = initial_delay
        self.max_delay = max_delay
        self.healthy_after = healthy_after
        self.clock = clock
        self.stopping = False

    # -- starting and restarting ------------------------------------------------------------------

    def start_all(self) -> None:
        for child in self.children.values():
            self._start(child)

    def _start(self, child: Child) -> None:
        output: Any = subprocess.DEVNULL
        if child.log_path is not None:
            child.log_path.parent.mkdir(parents=True, exist_ok=True)
            output = open(child.log_path, "ab")
        try:
            # a session of its own: Ctrl-C in the terminal reaches the runner only, which stops the children
            # in order; and the whole group (nameko and anything it spawned) can be signalled at once
            child.process = subprocess.Popen(list(child.argv), cwd=self.cwd, env=dict(child.env) if child.env else None,
                                             stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             start_new_session=True)
        finally:
            if output is not subprocess.DEVNULL:
                output.close()
        child.started_at = self.clock()
        child.restart_at = None
        if self.pid_dir is not None:
            self.pid_dir.mkdir(parents=True, exist_ok=True)
            (self.pid_dir / f"{child.name}.pid").write_text(str(child.process.pid))

    def poll(self) -> None:
        """One round: notice children that died (schedule their restart), start those that are due."""
        if self.stopping:
            return
        now = self.clock()
        for child in self.children.values():
            if child.restart_at is None and child.process is not None and child.process.poll() is not None:
                ran_for = now - child.started_at
                if ran_for >= self.healthy_after or child.delay == 0:
                    child.delay = self.initial_delay
                else:
                    child.delay = min(child.delay * 2, self.max_delay)
                child.restart_at = now + child.delay
                self.say(f"{child.name} exited (code {self._exit_code(child.process)}) after {ran_for:.0f} s; "
                         f"restarting in {child.delay:g} s")
            elif child.restart_at is not None and now >= child.restart_at:
                died_at = child.restart_at - child.delay
                self._start(child)
                child.restarts += 1
                child.history.append((died_at, child.started_at))
                self.say(f"{child.name} restarted (pid {child.pid}, restart {child.restarts})")

    @staticmethod
    def _exit_code(process: subprocess.Popen) -> str:
        code = process.returncode
        if code is not None and code < 0:
            try:
                return f"{code}, {signal.Signals(-code).name}"
            except ValueError:
                pass
        return str(code)

    def run(self, should_stop: Callable[[], bool], interval: float = 0.2) -> None:
        """Supervise until ``should_stop()`` says so."""
        while not should_stop():
            self.poll()
            time.sleep(interval)

    # -- stopping -----------------------------------------------------------------------------------

    def stop_all(self, timeout: float = 15.0) -> None:
        """SIGTERM every child's process group, SIGKILL what is left after ``timeout``; restart nothing."""
        self.stopping = True
        alive = [child for child in self.children.values() if child.running()]
        for child in alive:
            _signal_group(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in alive:
            try:
                child.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                self.say(f"{child.name} did not stop in {timeout:g} s; killing it")
                _signal_group(child.process.pid, signal.SIGKILL)
                child.process.wait(timeout=10)
        if self.pid_dir is not None:
            for child in self.children.values():
                (self.pid_dir / f"{child.name}.pid").unlink(missing_ok=True)

    # -- telling ------------------------------------------------------------------------------------

    def say(self, line: str) -> None:
        """A line for the terminal and the runner's log."""
        stamped = f"{datetime.now().strftime('%H:%M:%S')} {line}"
        print(stamped, file=self.out, flush=True)
        if self.runner_log is not None:
            self.runner_log.parent.mkdir(parents=True, exist_ok=True)
            with self.runner_log.open("a") as handle:
                handle.write(stamped + "\n")


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass
