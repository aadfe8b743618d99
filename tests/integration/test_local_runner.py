"""``make run``'s supervision (``deploy.local.supervise``) on a tiny set of processes of its own.

Real child processes (small Python programs, no ports), killed with SIGKILL as the OOM killer or an
operator would; the delays are scaled down (0.2 s doubling to 0.8 s, "healthy" after 1 s) so that the
backoff shows in seconds instead of minutes.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import eventlet
import pytest

from deploy.local import run
from deploy.local.supervise import Child, Supervisor
from tests.harness import wait_for

SLEEPER = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(600)"]
CRASHER = [sys.executable, "-c", "raise SystemExit(3)"]


def supervise(supervisor: Supervisor, until: float) -> None:
    """Let the supervisor work for ``until`` seconds (its loop, as ``make run`` runs it)."""
    end = time.monotonic() + until
    supervisor.run(should_stop=lambda: time.monotonic() > end, interval=0.02)


@pytest.fixture
def make(tmp_path: Path):
    made: list[Supervisor] = []

    def build(*children: Child, **timing: float) -> Supervisor:
        supervisor = Supervisor(list(children), cwd=tmp_path, runner_log=tmp_path / "log" / "runner.log",
                                pid_dir=tmp_path / "pids", out=io.StringIO(),
                                **{"initial_delay": 0.2, "max_delay": 0.8, "healthy_after": 1.0, **timing})
        made.append(supervisor)
        return supervisor

    yield build
    for supervisor in made:
        supervisor.stop_all(timeout=5)


def test_a_child_killed_with_sigkill_is_restarted_and_the_restart_logged(make, tmp_path):
    supervisor = make(Child("sleeper", SLEEPER, log_path=tmp_path / "log" / "sleeper.log"),
                      Child("bystander", SLEEPER))
    supervisor.start_all()
    sleeper, bystander = supervisor.children["sleeper"], supervisor.children["bystander"]
    first_pid, bystander_pid = sleeper.pid, bystander.pid
    assert (tmp_path / "pids" / "sleeper.pid").read_text() == str(first_pid)
    wait_for(lambda: "up" in (tmp_path / "log" / "sleeper.log").read_text(), timeout=10, message="the child's output")

    os.kill(first_pid, signal.SIGKILL)
    killed_at = time.monotonic()
    supervise(supervisor, 1.0)

    assert sleeper.running() and sleeper.pid != first_pid and sleeper.restarts == 1
    assert sleeper.started_at - killed_at >= 0.2  # after the backoff delay, not at once
    assert bystander.pid == bystander_pid and bystander.restarts == 0  # the others run on untouched
    assert (tmp_path / "pids" / "sleeper.pid").read_text() == str(sleeper.pid)
    lines = (tmp_path / "log" / "runner.log").read_text().splitlines()
    assert any("sleeper exited (code -9, SIGKILL)" in line and "restarting in 0.2 s" in line for line in lines)
    assert any("sleeper restarted" in line for line in lines)
    assert "sleeper restarted" in supervisor.out.getvalue()  # on the terminal too
    wait_for(lambda: (tmp_path / "log" / "sleeper.log").read_text().count("up") == 2, timeout=10,
             message="the restarted process to write to the same log")


def test_a_child_that_keeps_dying_is_restarted_with_doubling_delays_up_to_the_maximum(make):
    supervisor = make(Child("crasher", CRASHER))
    supervisor.start_all()
    supervise(supervisor, 4.5)
    crasher = supervisor.children["crasher"]
    waits = [round(restarted - died, 1) for died, restarted in crasher.history]
    # 0.2, 0.4, 0.8, then capped at 0.8 (each wait measured from the moment the death was noticed)
    assert waits[:4] == [0.2, 0.4, 0.8, 0.8], waits
    assert "crasher exited (code 3)" in supervisor.out.getvalue()


def test_the_delay_goes_back_to_the_first_after_a_healthy_run(make, tmp_path):
    flaky = tmp_path / "flaky.py"
    flaky.write_text("import sys, time\ntime.sleep(float(sys.argv[1]))\nraise SystemExit(1)\n")
    child = Child("flaky", [sys.executable, str(flaky), "0"])
    supervisor = make(child)
    supervisor.start_all()
    supervise(supervisor, 1.0)  # quick deaths: 0.2, 0.4 ...
    assert child.delay > 0.2
    child.argv = [sys.executable, str(flaky), "1.3"]  # from its next start it runs longer than "healthy_after"
    before = child.restarts
    supervise(supervisor, 4.0)
    assert child.restarts >= before + 2 and child.delay == 0.2
    died, restarted = child.history[-1]
    assert round(restarted - died, 1) == 0.2


def test_stopping_stops_every_child_and_restarts_none(make, tmp_path):
    supervisor = make(Child("a", SLEEPER), Child("b", SLEEPER))
    supervisor.start_all()
    pids = [child.pid for child in supervisor.children.values()]
    supervisor.stop_all(timeout=5)
    supervise(supervisor, 0.5)
    assert not any(child.running() for child in supervisor.children.values())
    assert all(child.restarts == 0 for child in supervisor.children.values())
    assert not list((tmp_path / "pids").glob("*.pid"))
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_make_stop_stops_a_runner_in_another_terminal_without_it_restarting_anything(tmp_path, monkeypatch):
    """``make stop`` (``run.py --stop``) signals the runner first: it stops its children and restarts none."""
    pids = tmp_path / "pids"
    script = tmp_path / "runner.py"
    # a stand-in for `make run` (same module name on its command line, so --stop recognises it), supervising
    # two sleepers with run.py's own SIGTERM handling
    script.write_text(f"""
import os, sys, time
sys.path.insert(0, {str(run.REPO)!r})
from deploy.local import run
from deploy.local.supervise import Child, Supervisor
run.PIDS = run.Path({str(pids)!r}); run.RUNNER_PID = run.PIDS / "runner.pid"
run.PIDS.mkdir(parents=True, exist_ok=True); run.RUNNER_PID.write_text(str(os.getpid()))
run._stop_on_sigterm()
sleeper = [sys.executable, "-c", "import time; time.sleep(600)", "nameko-stand-in"]
supervisor = Supervisor([Child("one", sleeper), Child("two", sleeper)], pid_dir=run.PIDS, initial_delay=0.1)
try:  # as in run.py: from the first start on, a SIGTERM stops what was started
    supervisor.start_all()
    print("supervising", flush=True)
    supervisor.run(should_stop=lambda: False, interval=0.05)
except KeyboardInterrupt:
    supervisor.stop_all(timeout=5)
    print("stopped, restarts:", sum(c.restarts for c in supervisor.children.values()), flush=True)
""")
    runner = subprocess.Popen([sys.executable, str(script), "deploy.local.run"], stdout=subprocess.PIPE, text=True)
    try:
        assert runner.stdout.readline().strip() == "supervising"
        children = [int((pids / f"{name}.pid").read_text()) for name in ("one", "two")]
        monkeypatch.setattr(run, "PIDS", pids)
        monkeypatch.setattr(run, "RUNNER_PID", pids / "runner.pid")
        run.stop_pids()
        assert runner.wait(timeout=30) == 0
        assert runner.stdout.read().strip() == "stopped, restarts: 0"
        for pid in children:
            wait_for(lambda pid=pid: not Path(f"/proc/{pid}").exists(), timeout=10, message="children gone")
    finally:
        if runner.poll() is None:
            runner.kill()
        eventlet.sleep(0)
