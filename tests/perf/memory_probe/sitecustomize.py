"""A memory probe for a process started with this folder on its ``PYTHONPATH`` (tests/perf/test_gateway_memory.py
gives it to the gateway): with ``CARELOOP_MEMORY_PROBE=<folder>`` set, each ``SIGUSR1`` writes ``snap-<n>.tracemalloc``
(the snapshot) and ``snap-<n>.json`` (RSS, tracemalloc's totals, objects by type, RPC replies waited for, open
files) into that folder. tracemalloc starts at the first signal (``CARELOOP_MEMORY_PROBE_FRAMES`` frames, default
8), not at start: tracing the imports would slow the start several times over, and what grows comes later.
Without the variable this module does nothing.
"""

from __future__ import annotations

import os

_FOLDER = os.environ.get("CARELOOP_MEMORY_PROBE")

if _FOLDER:
    import signal
    import tracemalloc

    _taken = [0]

    def _rss_kib() -> int:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def _dump(_signum: int, _frame: object) -> None:
        import collections
        import gc
        import json

        if not tracemalloc.is_tracing():
            tracemalloc.start(int(os.environ.get("CARELOOP_MEMORY_PROBE_FRAMES", "8")))
        gc.collect()
        _taken[0] += 1
        name = f"{_FOLDER}/snap-{_taken[0]}"
        tracemalloc.take_snapshot().dump(name + ".tracemalloc")
        objects = gc.get_objects()
        types = collections.Counter(type(each).__name__ for each in objects)
        pending = sum(len(getattr(each, "_reply_events", ())) for each in objects
                      if type(each).__name__ == "ReplyListener")
        current, peak = tracemalloc.get_traced_memory()
        figures = {"rss_kib": _rss_kib(), "traced": current, "traced_peak": peak,
                   "tracemalloc_overhead": tracemalloc.get_tracemalloc_memory(),
                   "reply_events": pending, "open_files": len(os.listdir("/proc/self/fd")),
                   "objects": len(objects), "types": dict(types.most_common(40))}
        del objects
        with open(name + ".part", "w") as out:
            json.dump(figures, out)
        os.replace(name + ".part", name + ".json")  # the reader waits for this name: whole or absent

    signal.signal(signal.SIGUSR1, _dump)
