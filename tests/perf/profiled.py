"""``python -m tests.perf.profiled <out.prof> <nameko args…>``: ``nameko`` under cProfile counting CPU time
(not wall time, which a loaded machine inflates), from the first SIGUSR1 until the process exits — the
steady state only, without start-up and imports."""

from __future__ import annotations

import atexit
import cProfile
import signal
import sys
import time

if __name__ == "__main__":
    out, sys.argv = sys.argv[1], ["nameko", *sys.argv[2:]]
    profiler = cProfile.Profile(time.process_time)
    started = []

    def start(*_: object) -> None:
        if not started:
            started.append(True)
            profiler.enable()

    def dump() -> None:
        profiler.disable()
        profiler.dump_stats(out)

    signal.signal(signal.SIGUSR1, start)
    atexit.register(dump)
    from nameko.cli.main import main

    sys.exit(main())
